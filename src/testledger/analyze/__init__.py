"""Analysis of stored runs: issue detection, flaky tests, metric regressions, watchers."""
