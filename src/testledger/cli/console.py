"""The console every command prints through (imported when a command first prints)."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from testledger.common.text import visible

__all__ = ["TextConsole", "console"]


class TextConsole(Console):
    """A console that prints every string as text. Test ids (``test_x[a-b]``), messages
    (``[red]x[/red]``), branches and notes are data, so no string is read as Rich markup or
    emoji codes, and control characters are shown visibly. Styling is given with ``style=``
    and Text objects instead of markup."""

    def render_str(self, text: str, **options: Any) -> Text:
        options.update(markup=False, emoji=False, highlight=False)
        return super().render_str(visible(text), **options)


# Piped output (CI logs, files) gets a wide console instead of Rich's 80 columns, so tables
# are not squeezed into unreadable stubs; a terminal keeps its own width, and $COLUMNS wins.
console = TextConsole(
    highlight=False,
    markup=False,
    emoji=False,
    width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160,
)
