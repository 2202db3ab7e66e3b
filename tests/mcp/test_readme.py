"""The README's MCP client configuration is valid JSON naming a command that exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testledger.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readmes_client_configuration_starts_testledger_mcp(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- mcp-config -->\n```json\n", 1)[1].split("```", 1)[0]
    server = json.loads(block)["mcpServers"]["testledger"]
    assert server == {
        "command": "testledger",
        "args": ["--db", "sqlite:///.testledger/ledger.db", "mcp"],
    }
    assert main([*server["args"], "--help"]) == 0
    assert "Serve the ledger to AI agents over MCP" in capsys.readouterr().out
