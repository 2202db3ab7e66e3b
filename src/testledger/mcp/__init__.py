"""testledger over the Model Context Protocol: ``testledger mcp`` lets an agent ask the ledger
what broke, why, and what it cost.

Built on the official ``mcp`` SDK (the optional extra ``testledger[mcp]``); every tool is a call
into :mod:`testledger.api` (import-linter forbids this package the layers below it), its input
schema from its signature, its answer structured, bounded, and summed up in a line of text.
Importing this package needs the SDK; :func:`sdk_missing` says whether it is absent without
importing it.
"""

from __future__ import annotations

from importlib.util import find_spec

__all__ = ["INSTALL_HINT", "sdk_missing"]

INSTALL_HINT = 'the MCP server needs the mcp extra: pip install "testledger[mcp]"'


def sdk_missing() -> bool:
    """Whether the ``mcp`` SDK is not installed."""
    try:
        return find_spec("mcp.server.mcpserver") is None
    except ModuleNotFoundError:
        return True
