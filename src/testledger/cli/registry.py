"""Which module declares each command, and the line the top-level help shows for it.

The command modules are imported only when their command runs (or its help is asked for), so
that ``testledger --help`` and a command on a small ledger do not pay for importing every other
command and the database layers behind them. To add a command: declare it in a module of this
package with ``@command(...)`` (testledger.cli.app) and add a row here, in the section where the
top-level help should list it. ``tests/cli/test_registry.py`` checks every row against the
module that declares the command.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COMMANDS", "SECTIONS", "CommandEntry"]


class CommandEntry(NamedTuple):
    """A command: the section of the top-level help it is listed in, the module of
    testledger.cli that declares it, and its line in that listing."""

    section: str
    module: str
    summary: str


#: The sections of the top-level help, in order.
SECTIONS = ("Record", "Inspect", "Detect", "Report", "Serve and administer")

COMMANDS: dict[str, CommandEntry] = {
    "import": CommandEntry(
        "Record",
        "imports",
        "Import test reports: JUnit, pytest, CTRF, Allure and more",
    ),
    "sync": CommandEntry("Record", "runs", "Load the runs recorded while the database was away"),
    "demo": CommandEntry(
        "Record", "demo", "Record a realistic test history and show the reports on it"
    ),
    "runs": CommandEntry("Inspect", "runs", "List recorded runs, newest first"),
    "show": CommandEntry("Inspect", "runs", "Show one run: its summary and its failing tests"),
    "history": CommandEntry("Inspect", "trend", "One test's results over time"),
    "trend": CommandEntry(
        "Inspect", "trend", "Pass rate, quality, cost, duration and tokens over the last runs"
    ),
    "cost": CommandEntry("Inspect", "trend", "Cost and tokens per run, tool, provider and model"),
    "compare": CommandEntry(
        "Inspect", "compare", "Compare two runs: new failures, fixed, flaky, slower, costlier"
    ),
    "summary": CommandEntry(
        "Inspect", "compare", "A markdown report of a run for a PR comment or CI summary"
    ),
    "detect": CommandEntry(
        "Detect", "issues", "Group a run's failures into issues and move their lifecycle"
    ),
    "issues": CommandEntry("Detect", "issues", "List issues, detected and backfilled alike"),
    "issue": CommandEntry("Detect", "issues", "Show an issue's history and evidence, or change it"),
    "explain": CommandEntry("Detect", "issues", "Show how a failure's fingerprint is made"),
    "flaky": CommandEntry("Detect", "issues", "List flaky tests, with the evidence"),
    "regressions": CommandEntry(
        "Detect", "regressions", "List lasting changes in each test's metrics over its runs"
    ),
    "watch": CommandEntry("Detect", "watch", "Watch a recorded run: one observation per result"),
    "gate": CommandEntry("Report", "compare", "Check a run against quality rules, for CI"),
    "report": CommandEntry("Report", "html", "Build the HTML report of a run"),
    "export": CommandEntry(
        "Report", "export", "Export runs, results, issues or observations, streamed"
    ),
    "query": CommandEntry(
        "Report", "trend", "Run one of the proposal's example queries, unchanged"
    ),
    "backfill": CommandEntry(
        "Report", "issues", "Create or update issues from hand-kept markdown checklists"
    ),
    "mcp": CommandEntry("Serve and administer", "mcp", "Serve the ledger to AI agents over MCP"),
    "serve": CommandEntry(
        "Serve and administer", "serve", "Serve the web dashboard and HTTP API (FastAPI)"
    ),
    "db": CommandEntry(
        "Serve and administer", "db", "The database schema: upgrade, revision, DDL, roles"
    ),
    "prune": CommandEntry(
        "Serve and administer", "prune", "Remove old runs, keeping their issues and daily sums"
    ),
    "token": CommandEntry(
        "Serve and administer", "token", "API tokens for the web app and HTTP ingest"
    ),
}
