"""pytest node ids as a test's (tool_name, variation): one rule for the pytest plugin and the
importers of pytest's JSON reports, so that a test recorded live and imported from a report is
the same test. Standard library only: the plugin's writer process and the session use it."""

from __future__ import annotations

__all__ = ["split_nodeid"]


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """A pytest node id's ``(tool_name, variation)``: what precedes the last ``::``, and the rest.

    Parameters stay with the function name (``test_x[a::b]`` is one variation, ``::`` inside the
    brackets notwithstanding). A node id without ``::`` (a module that failed to collect) is its
    own tool, with the variation ``<module>``.
    """
    first_sep = nodeid.find("::")
    if first_sep < 0:
        return nodeid, "<module>"
    base, params = nodeid, ""
    if nodeid.endswith("]"):
        bracket = nodeid.find("[", first_sep)
        if bracket >= 0:
            base, params = nodeid[:bracket], nodeid[bracket:]
    tool, sep, func = base.rpartition("::")
    if not sep or not tool:
        return nodeid, "<module>"
    return tool, f"{func}{params}"
