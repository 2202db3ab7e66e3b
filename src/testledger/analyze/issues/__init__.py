"""Grouping failures into issues: message normalisation, fingerprints, rules, the lifecycle."""
