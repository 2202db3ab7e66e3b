"""Storage trouble the recorder and ``testledger sync`` must ride out: NUL bytes in text,
runs that cannot be loaded, a full disk, torn JSON lines, runs finishing at once."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger
from testledger.cli import main
from testledger.ingest.formats import ctrf
from testledger.model import TestResult
from testledger.record import archive as archive_module
from testledger.store.encoding import encode_result
from tests.helpers import query, query_rows, run_ledger

pytest_plugins = ["pytester"]

NUL_SQL = (
    "SELECT t.test_id, t.error_message, t.traceback, t.details, t.metrics, r.status "
    "FROM test_results t JOIN test_runs r ON r.id = t.run_id"
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_a_nul_byte_is_stored_alike_on_both_databases(ledger: Ledger) -> None:
    with ledger.start_run(branch="main", run_key="nul") as run:
        run.record(
            tool_name="t\x00ool",
            variation="v",
            status="FAIL",
            error_message="a\x00b",
            traceback="tb\x00",
            metrics={"k\x00": 2.0, "plain": 1},
            details={"note": "x"},
        )
    assert not run.spooled
    [row] = query_rows(ledger.url, NUL_SQL)
    assert row["test_id"] == "t\ufffdool/v"
    assert row["error_message"] == "a\ufffdb"
    assert row["traceback"] == "tb\ufffd"
    assert _json(row["metrics"]) == {"k\ufffd": 2.0, "plain": 1}
    details = _json(row["details"])
    assert details["note"] == "x"
    assert details["nul_replaced"] == [
        "test_id",
        "tool_name",
        "error_message",
        "traceback",
        "metrics",
    ]
    assert row["status"] == "finished"


def test_an_escaped_backslash_is_not_taken_for_a_nul() -> None:
    result = TestResult(
        test_id="a",
        tool_name="a",
        variation="b",
        status="FAIL",
        error_message="\\u0000",
        details={"p": "\\u0000"},
    )
    row = encode_result(result)
    assert row[18] == "\\u0000" and json.loads(row[22]) == {"p": "\\u0000"}


def test_a_nul_in_a_ctrf_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctrf.json"
    report = {
        "results": {
            "tool": {"name": "playwright"},
            "summary": {"tests": 1, "passed": 0, "failed": 1, "start": 1, "stop": 2},
            "tests": [{"name": "n\u0000", "status": "failed", "duration": 1, "message": "m\u0000"}],
        }
    }
    path.write_text(json.dumps(report))
    [result] = list(ctrf.parse(path).results)
    row = encode_result(result)
    assert "\x00" not in "".join(v for v in row if isinstance(v, str))
    assert json.loads(row[22])["nul_replaced"]


def _write_spooled(results_dir: Path, key: str) -> Path:
    with Ledger("postgresql://x:pw@127.0.0.1:9/none", results_dir=results_dir) as offline:
        with offline.start_run(branch="main", run_key=key) as run:
            run.record(tool_name="a", variation="b", status="FAIL", error_message="e\x00")
    return run.archive.folder


def test_sync_passes_a_run_it_cannot_load_and_loads_the_rest(
    db_url: str, tmp_path: Path, capsys: Any
) -> None:
    results_dir = tmp_path / "results"
    bad = _write_spooled(results_dir, "a-bad")
    _write_spooled(results_dir, "b-good")
    # A row of the wrong length cannot be loaded, whatever the database.
    with (bad / "results.jsonl").open("a") as handle:
        handle.write('{"event":"result","row":["only-one"]}\n')
    code = main(["--db", db_url, "--results-dir", str(results_dir), "sync"])
    out = capsys.readouterr().out
    assert code == 1
    [line] = [x for x in out.splitlines() if "could not load" in x]
    assert "a-bad" in line and "Traceback" not in out
    assert "synced b-good" in out
    assert query(db_url, "SELECT run_key, status FROM test_runs ORDER BY run_key") == [
        ("b-good", "finished")
    ]
    assert json.loads((bad / "run.json").read_text())["database"]["state"] == "pending"
    [(message,)] = query(db_url, "SELECT error_message FROM test_results")
    assert message == "e\ufffd"


# -- a full disk, torn lines ------------------------------------------------------------------

OFFLINE = "postgresql://x:pw@127.0.0.1:9/none"


def _no_space(*_args: object, **_kwargs: object) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


class _FullDisk:
    """The results file's handle once the disk is full: every write fails, as the OS says."""

    def __init__(self, real: Any) -> None:
        self.real = real

    write = flush = staticmethod(_no_space)

    def fileno(self) -> int:
        return int(self.real.fileno())

    def close(self) -> None:
        self.real.close()


def _fill_the_disk(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run.archive._events = _FullDisk(run.archive._events)
    monkeypatch.setattr(archive_module, "write_atomically", _no_space)
    monkeypatch.setattr(archive_module, "_copy_fresh", _no_space)


def test_a_full_disk_never_reaches_the_runner_and_the_database_gets_every_result(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with ledger.start_run(branch="main", run_key="full", batch_size=2) as run:
        run.record(tool_name="a", variation="0", status="PASS")
        _fill_the_disk(run, monkeypatch)
        for index in range(1, 5):
            run.record(tool_name="a", variation=str(index), status="FAIL")
    assert run.stats is not None and run.stats.total_tests == 5
    assert query(ledger.url, "SELECT count(*) FROM test_results") == [(5,)]
    warned = [r for r in caplog.records if "cannot write the files" in r.getMessage()]
    assert len(warned) == 1 and "No space left on device" in warned[0].getMessage()


def test_a_full_disk_with_the_database_away_still_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger(OFFLINE, results_dir=tmp_path / "results") as offline:
        with offline.start_run(branch="main", run_key="lost") as run:
            run.record(tool_name="a", variation="0", status="PASS")
            _fill_the_disk(run, monkeypatch)
            run.record(tool_name="a", variation="1", status="PASS")
    assert run.archive.failed == "No space left on device"


def test_a_full_disk_from_the_start_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "mkdir", _no_space)
    with Ledger(OFFLINE, results_dir=tmp_path / "results") as offline:
        with offline.start_run(branch="main", run_key="nothing") as run:
            run.record(tool_name="a", variation="0", status="PASS")
    assert run.stats is not None and run.stats.total_tests == 0


def test_a_run_key_used_again_after_a_torn_line_finishes_and_syncs(
    db_url: str, tmp_path: Path, capsys: Any
) -> None:
    results_dir = tmp_path / "results"
    folder = _write_spooled(results_dir, "torn")
    with (folder / "results.jsonl").open("a") as handle:
        handle.write('{"event":"result","row":["torn/x",1,"to')  # the process died here
    with Ledger(OFFLINE, results_dir=results_dir) as offline:
        with offline.start_run(branch="main", run_key="torn") as run:
            run.record(tool_name="a", variation="c", status="PASS")
    assert run.stats is not None and run.stats.total_tests == 2
    assert main(["--db", db_url, "--results-dir", str(results_dir), "sync"]) == 0
    assert "synced torn" in capsys.readouterr().out
    assert query(db_url, "SELECT test_id FROM test_results ORDER BY test_id") == [
        ("a/b",),
        ("a/c",),
    ]


def test_a_torn_line_inside_the_spool_is_skipped_with_a_warning(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As a file written before torn lines were cut looks: the torn line glued to the next."""
    results_dir = tmp_path / "results"
    folder = _write_spooled(results_dir, "glued")
    events = folder / "results.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    good = lines[-1].replace('"a/b"', '"a/z"').replace('"b"', '"z"')
    events.write_text("".join([*lines[:-1], lines[-1][:25], lines[-1], good]))
    assert main(["--db", db_url, "--results-dir", str(results_dir), "sync"]) == 0
    assert query(db_url, "SELECT test_id FROM test_results ORDER BY test_id") == [("a/z",)]
    assert any("skipped torn line 2" in r.getMessage() for r in caplog.records)


SESSION = "def test_ok():\n    pass\n\ndef test_broken():\n    assert False\n"


def _session_whose_files_fail(pytester: pytest.Pytester, ledger_url: str) -> list[str]:
    """A pytest session recording into ``ledger_url`` with a results folder that cannot be
    made (under a plain file): the summary's testledger lines."""
    blocker = pytester.path / "not-a-folder"
    blocker.write_text("")
    pytester.makepyfile(test_session=SESSION)
    result = run_ledger(
        pytester, ledger_url, "--ledger-wait-detection", results=blocker / "results"
    )
    result.assert_outcomes(passed=1, failed=1)
    return [line for line in result.outlines if line.startswith("testledger:")]


def test_a_session_whose_files_cannot_be_written_says_the_database_alone_has_it(
    pytester: pytest.Pytester, db_url: str
) -> None:
    said = _session_whose_files_fail(pytester, db_url)
    assert len(said) == 2, said
    assert said[0].startswith("testledger: recorded 2 results (run 1) into "), said
    assert said[1].startswith("testledger: the run's files cannot be written in "), said
    assert said[1].endswith(": the database alone holds the run"), said
    assert query(db_url, "SELECT status, total_tests FROM test_runs") == [("finished", 2)]


def test_a_session_neither_the_database_nor_the_files_take_says_so(
    pytester: pytest.Pytester,
) -> None:
    away = f"sqlite:///{pytester.path / 'not-a-folder' / 'ledger.db'}"
    said = _session_whose_files_fail(pytester, away)
    # One line, and no claim that the results are anywhere (nor a file to sync).
    assert len(said) == 1, said
    assert " unreachable (" in said[0] and "the run's files cannot be written in " in said[0]
    assert said[0].endswith(" are recorded nowhere"), said
    assert "testledger sync" not in said[0]
