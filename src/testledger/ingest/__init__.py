"""Importing report files: detecting their format, parsing, writing their runs."""
