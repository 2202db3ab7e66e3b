"""Marks on the ``testledger`` logger's records (``extra=``), for whoever collects them.

Standard library only: the pytest plugin's log collector
(:class:`testledger.record.writer_process.LogCollector`) reads them in the writer process and,
should that die, in the pytest session itself.
"""

from __future__ import annotations

__all__ = ["SAID_BY_SUMMARY"]

#: A record that the pytest plugin's summary says in its own words (a database outage that
#: sent the run to its JSON files, the files that cannot be written): its collector leaves it
#: out.
SAID_BY_SUMMARY = "testledger_said_by_summary"
