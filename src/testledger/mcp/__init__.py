"""testledger over the Model Context Protocol: ``testledger mcp`` lets an agent ask the ledger
what broke, why, and what it cost.

Built on the official ``mcp`` SDK (the optional extra ``testledger[mcp]``); every tool is a call
into :mod:`testledger.api` (import-linter forbids this package the layers below it), its input
schema from its signature, its answer structured, bounded, and summed up in a line of text.
Modules: ``tools`` (the tools), ``shapes`` and ``answers`` (their answers), ``bounds`` (the size
bounds), ``server`` (resources, the prompt, the transports). They import the SDK; this package
itself does not, so that :func:`sdk_missing` can tell the command line it is absent.
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
