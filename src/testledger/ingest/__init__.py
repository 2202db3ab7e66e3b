"""Importers: one module per report format, each turning a file into a :class:`ParsedFile`."""
