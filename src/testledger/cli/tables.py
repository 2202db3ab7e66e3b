"""Tables that stay readable in any terminal width.

One column carries what must be read whole (a test id, an issue title): it may wrap but is never
cut. The others are figures and short labels printed on one line; when the terminal is too
narrow for all of them beside a readable main column, the least important ones are left out,
rather than every column being squeezed into ``tests/demo_…`` stubs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from rich.table import Table
from rich.text import Text

__all__ = ["Cell", "Column", "fitted_table"]

#: The narrowest the wrapping column may get before other columns are left out.
MAIN_COLUMN_MIN_WIDTH = 24
#: What Rich puts around each column of a borderless table (one space each side).
_PADDING = 2


@dataclass(frozen=True, slots=True)
class Column:
    """``main``: the column that wraps instead of being cut (one per table). ``keep``: the
    lower, the longer it stays as the terminal narrows (0: always shown)."""

    header: str
    justify: Literal["left", "right"] = "left"
    main: bool = False
    keep: int = 0


#: A cell: text (printed as it is), or a styled Text for the few cells that carry a colour.
Cell: TypeAlias = "str | Text"


def _width(column: Column, cells: Sequence[Cell]) -> int:
    texts = [cell.plain if isinstance(cell, Text) else cell for cell in cells]
    widest = max((max(map(len, text.splitlines() or [""])) for text in texts), default=0)
    return max(len(column.header), widest)


def _chosen(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> list[int]:
    """Indexes of the columns that fit beside the main column's minimum width."""
    chosen = list(range(len(columns)))
    widths = [_width(column, [row[i] for row in rows]) for i, column in enumerate(columns)]

    def needed() -> int:
        fixed = sum(widths[i] + _PADDING for i in chosen if not columns[i].main)
        mains = [i for i in chosen if columns[i].main]
        return fixed + sum(min(widths[i], MAIN_COLUMN_MIN_WIDTH) + _PADDING for i in mains)

    while needed() > width:
        droppable = [i for i in chosen if columns[i].keep > 0]
        if not droppable:
            break
        # The least important first; among equals, the rightmost.
        chosen.remove(max(droppable, key=lambda i: (columns[i].keep, i)))
    return chosen


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int,
    title: str | None = None,
) -> Table:
    """A borderless table of ``rows`` (cells as text) fitted to ``width`` columns."""
    chosen = _chosen(columns, rows, width)
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    for index in chosen:
        column = columns[index]
        if column.main:
            table.add_column(
                column.header,
                justify=column.justify,
                overflow="fold",
                min_width=min(MAIN_COLUMN_MIN_WIDTH, _width(column, [r[index] for r in rows])),
            )
        else:
            table.add_column(column.header, justify=column.justify, no_wrap=True)
    for row in rows:
        table.add_row(*(row[index] for index in chosen))
    return table
