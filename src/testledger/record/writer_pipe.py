"""The messages between the pytest plugin and its writer process, framed on a pipe.

Each message is a frame of :mod:`testledger.common.framing`.

pytest -> writer (the writer's stdin):

* ``("start", settings, options)``: open the ledger and start the run (``Ledger.start_run``
  keyword arguments in ``options``);
* ``("batch", seq, items)``: results; each item is a passing test's compact tuple
  (see :data:`COMPACT_FIELDS`) or a ``(TestResult, [extra WatcherObservation...])`` pair;
* ``("finish", status, notes, wall_clock_secs)``: finish the run (``RunStatus`` value, the
  session's duration) and reply ``done``.

writer -> pytest (the writer's stdout):

* ``("ack", seq)``: the batch is in the run's JSON spool (written to the OS), so the pytest side
  may forget it;
* ``("done", summary)``: the run is finished; ``summary`` is a dict of plain values (its
  ``detecting``: issue detection follows);
* ``("detected", errors)``: issue detection and retention are over (the errors they logged);
  the session waits for it only briefly (``writer_client.DETECTION_WAIT_SECS``).

End of file on its stdin without ``finish`` tells the writer that the session died: it closes
the run as aborted.
"""

from __future__ import annotations

__all__ = ["COMPACT_FIELDS"]

#: What a passing test is sent as (the writer expands it into a full result row): everything
#: else about such a test is known (PASS, no error, no output, nothing from the fixture).
COMPACT_FIELDS = ("test_id", "attempt", "duration_secs", "started_epoch", "rss_mb", "cpu_percent")
