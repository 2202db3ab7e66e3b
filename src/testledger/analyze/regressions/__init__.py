"""Regressions of per-test metrics: series, change points and the issues they open."""
