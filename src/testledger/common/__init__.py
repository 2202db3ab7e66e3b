"""Low-level helpers below every layer: standard library only, no SQLAlchemy."""
