"""The report formats of common test tools, one module each (plus their parsing helpers)."""
