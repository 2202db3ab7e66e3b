"""Flaky tests: which tests pass and fail without a change that explains it."""
