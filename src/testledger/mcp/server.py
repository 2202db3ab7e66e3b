"""The MCP server over one ledger: the tools of :mod:`testledger.mcp.tools`, the latest run and
the issues board as resources, and a prompt to triage the latest run; served over stdio or
streamable HTTP with the official SDK's ``MCPServer``."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations

from testledger import api
from testledger.errors import TestledgerError
from testledger.mcp.tools import LedgerTools

__all__ = ["ISSUES_URI", "LATEST_RUN_URI", "build_server", "serve", "triage_prompt"]

LATEST_RUN_URI = "testledger://runs/latest"
ISSUES_URI = "testledger://issues"
#: How many of the open issues the issues board resource lists.
BOARD_ISSUES = 50

_INSTRUCTIONS = """\
testledger keeps the history of every test run: results, issues (failures grouped by
fingerprint and tracked across runs), flaky tests, metric regressions, and cost.
To answer "what broke, why, and what did it cost": compare_runs (new failures with their issue),
then run_failures (one representative message and traceback per issue), issue CODE (its
history and fingerprint), test_history TEST (recent outcomes, open issues, change points),
and cost. Every answer is bounded: `truncated` says how many items each list left out.
"""


def _read_only() -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _resource_text(tools: LedgerTools, call: Any) -> str:
    """A resource's JSON: the structured content of a tool's answer; a tool error becomes a
    resource error with its message."""
    try:
        result = call()
    except ToolError as exc:
        raise ResourceError(str(exc)) from None
    return json.dumps(result.structured_content, ensure_ascii=False, indent=2)


def triage_prompt(tools: LedgerTools) -> str:
    """The "triage the latest run" prompt's text, naming the latest run when there is one."""
    try:
        latest = api.show_run(tools.opened()).run
        where = (
            f"The latest run is run {latest.id} ({latest.run_key}, suite {latest.suite}, branch"
            f" {latest.branch}): {latest.tests_failed} of {latest.total_tests} tests failed."
        )
    except TestledgerError as exc:
        where = f"The ledger answered: {api.mask_urls_in(str(exc))}."
    return (
        f"Triage the latest test run recorded in testledger. {where}\n"
        "1. Call compare_runs to see what broke since the previous run: new failures (with their"
        " issue), fixed, still failing, flaky, slower and costlier tests.\n"
        "2. Call run_failures to read one representative message and traceback per issue.\n"
        "3. For each new or regressed issue, call issue CODE for its occurrences and fingerprint,"
        " and test_history for the failing test's recent outcomes and change points.\n"
        "4. Call cost to say what the run cost, by provider and model.\n"
        "Then report: what broke, the likely cause of each issue (quote the evidence), what is"
        " flaky rather than broken, and what the run cost compared with the previous one."
    )


def build_server(ledger: api.Ledger, *, allow_writes: bool = False) -> MCPServer[Any]:
    """The server over ``ledger``; the write tools refuse unless ``allow_writes``."""
    tools = LedgerTools(ledger, allow_writes=allow_writes)
    mode = "Writes are allowed." if allow_writes else "Read-only: the write tools refuse."
    server: MCPServer[Any] = MCPServer(
        "testledger",
        title="testledger",
        instructions=_INSTRUCTIONS + mode,
        version=_version(),
        log_level="WARNING",
    )
    for tool in tools.read_tools():
        server.add_tool(tool, annotations=_read_only())
    for tool in tools.write_tools():
        server.add_tool(
            tool,
            annotations=ToolAnnotations(
                read_only_hint=False, destructive_hint=False, open_world_hint=False
            ),
        )

    @server.resource(
        LATEST_RUN_URI,
        name="latest-run",
        description="The latest run's summary and failing tests (the run_summary tool's answer).",
        mime_type="application/json",
    )
    def latest_run() -> str:
        return _resource_text(tools, tools.run_summary)

    @server.resource(
        ISSUES_URI,
        name="issues-board",
        description=f"The open issues, most urgent first (at most {BOARD_ISSUES}).",
        mime_type="application/json",
    )
    def issues_board() -> str:
        return _resource_text(
            tools,
            lambda: tools.list_issues(status=["OPEN", "IN_PROGRESS"], limit=BOARD_ISSUES),
        )

    @server.prompt(
        name="triage_latest_run",
        title="Triage the latest run",
        description="What broke in the latest run, why, and what it cost, step by step.",
    )
    def triage_latest_run() -> str:
        return triage_prompt(tools)

    return server


def _version() -> str:
    try:
        import testledger

        return str(testledger.__version__)
    except Exception:  # an uninstalled checkout has no package metadata
        return "0"


def serve(
    ledger: api.Ledger,
    *,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_writes: bool = False,
) -> None:
    """Serve ``ledger`` over stdio, or with ``http`` over streamable HTTP at
    ``http://HOST:PORT/mcp``, until the client goes away or the process is stopped."""
    server = build_server(ledger, allow_writes=allow_writes)
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
