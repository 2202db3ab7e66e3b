"""The pytest plugin's writer process: the session keeps SQLAlchemy out, a writer that dies
hands over to the spool, a session that dies leaves an aborted run, and the pipe's framing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from testledger.cli import main as cli_main
from testledger.common.framing import FrameReader, encode_frame, read_frame
from testledger.record.writer_process import _read_ahead
from tests.helpers import UNUSED_PLUGINS
from tests.helpers import query_rows as rows

pytest_plugins = ["pytester"]


def test_recording_session_never_imports_the_database_stack(
    pytester: pytest.Pytester, db_url: str
) -> None:
    """SQLAlchemy and the driver live in the writer process, not in the test session."""
    pytester.makepyfile(
        test_modules="""
        import sys

        def test_fail():
            assert False

        def test_no_database_modules_here():
            loaded = [m for m in ("sqlalchemy", "psycopg", "numpy") if m in sys.modules]
            assert loaded == []
        """
    )
    results = pytester.path / "results"
    result = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS, f"--ledger={db_url}", f"--ledger-results-dir={results}"
    )
    result.assert_outcomes(passed=1, failed=1)
    got = rows(db_url, "SELECT test_id, status FROM test_results ORDER BY test_id")
    assert [r["status"] for r in got] == ["FAIL", "PASS"]


KILLED_WRITER = """
import os
import pathlib
import signal
import time

def test_before():
    pass

def test_slow():
    time.sleep(0.6)  # past the plugin's batch interval: the results so far go to the writer

def test_kill_writer(request):
    # Once the writer has started the run and spooled the first batch, as the OOM killer might.
    results = pathlib.Path(request.config.option.testledger_results_dir)
    for _ in range(600):
        spool = list(results.glob("runs/*/results.jsonl"))
        if spool and spool[0].read_text().count('"event":"result"') >= 2:
            break
        time.sleep(0.05)
    recorder = request.config.pluginmanager.get_plugin("testledger-recorder")
    os.kill(recorder.writer_pid, signal.SIGKILL)

def test_after():
    pass

def test_after_failing():
    assert 1 == 2
"""


def test_writer_that_dies_hands_over_to_the_spool(
    pytester: pytest.Pytester, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(test_killed=KILLED_WRITER)
    results = pytester.path / "results"
    result = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS, f"--ledger={db_url}", f"--ledger-results-dir={results}"
    )
    result.assert_outcomes(passed=4, failed=1)
    output = result.stdout.str() + result.stderr.str()
    lines = [line for line in output.splitlines() if "testledger:" in line]
    assert len(lines) == 1, lines
    assert "writer process exited with status -9" in lines[0]
    assert "recorded 5 results" in lines[0] and "testledger sync" in lines[0]

    (run_json,) = results.glob("runs/*/run.json")
    run = json.loads(run_json.read_text())
    assert run["database"]["state"] == "pending" and run["status"] == "finished"
    assert run["stats"]["total_tests"] == 5 and run["stats"]["tests_failed"] == 1
    events = [json.loads(line) for line in (run_json.parent / "results.jsonl").open()]
    spooled = {event["row"][0].split("::")[1] for event in events if event["event"] == "result"}
    assert spooled == {"test_before", "test_slow", "test_kill_writer", "test_after"} | {
        "test_after_failing"
    }

    # The spool completes the run the writer had started: every result once.
    code = cli_main(["--db", db_url, "--results-dir", str(results), "sync"])
    assert code == 0, capsys.readouterr()
    got = rows(db_url, "SELECT test_id, attempt, status FROM test_results")
    assert len(got) == 5 and len({r["test_id"] for r in got}) == 5
    (stored,) = rows(db_url, "SELECT status, total_tests, tests_failed FROM test_runs")
    assert (stored["status"], stored["total_tests"], stored["tests_failed"]) == ("finished", 5, 1)


def test_without_a_writer_process_the_session_records_itself(
    pytester: pytest.Pytester, db_url: str
) -> None:
    """Where no writer process can be started, the run is recorded from the session."""
    pytester.makeconftest(
        """
        from testledger.record import writer_client

        def refuse(self, settings, options):
            raise OSError("no processes here")

        writer_client.WriterClient.__init__ = refuse
        """
    )
    pytester.makepyfile(test_here="def test_ok():\n    pass\n\ndef test_bad():\n    assert 0\n")
    results = pytester.path / "results"
    result = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS, f"--ledger={db_url}", f"--ledger-results-dir={results}"
    )
    result.assert_outcomes(passed=1, failed=1)
    lines = [line for line in result.stdout.lines if "testledger:" in line]
    assert len(lines) == 1 and lines[0].startswith("testledger: recorded 2 results (run 1) into")
    got = rows(db_url, "SELECT status FROM test_results ORDER BY test_id")
    assert [r["status"] for r in got] == ["FAIL", "PASS"]
    (stored,) = rows(db_url, "SELECT status, total_tests FROM test_runs")
    assert (stored["status"], stored["total_tests"]) == ("finished", 2)


INTERRUPTED = """
import pathlib
import time

def test_first():
    pass

def test_wait_for_ctrl_c():
    pathlib.Path("waiting").touch()
    time.sleep(60)
"""


def test_ctrl_c_aborts_the_run_through_the_writer(pytester: pytest.Pytester, db_url: str) -> None:
    """Ctrl-C reaches the terminal's process group: pytest, not its writer, which then
    finishes the run as aborted."""
    pytester.makepyfile(test_interrupted=INTERRUPTED)
    results = pytester.path / "results"
    # Ctrl-C's own handler, as in a terminal: a shell's background job (and all it starts)
    # ignores SIGINT, and Python keeps an inherited "ignore".
    interruptible = (
        "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler);"
        " sys.exit(pytest.main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", interruptible, *UNUSED_PLUGINS, f"--ledger={db_url}"]
    session = subprocess.Popen(
        [*command, f"--ledger-results-dir={results}"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal's process group of its own
    )
    for _ in range(600):
        if (pytester.path / "waiting").exists():
            break
        time.sleep(0.05)
    os.killpg(session.pid, signal.SIGINT)
    output, _ = session.communicate(timeout=120)
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output
    # Less the line saying that issue detection goes on after the session, when it does.
    lines = [
        line
        for line in output.splitlines()
        if "testledger:" in line and "goes on in the background" not in line
    ]
    assert len(lines) == 1 and "testledger: recorded 1 result (run 1)" in lines[0], output
    (stored,) = rows(db_url, "SELECT status, total_tests, notes FROM test_runs")
    assert (stored["status"], stored["total_tests"]) == ("aborted", 1)
    assert "KeyboardInterrupt" in stored["notes"]


KILLED_SESSION = """
import os
import time

def test_first():
    pass

def test_slow():
    time.sleep(0.6)  # past the plugin's batch interval: both results go to the writer

def test_die():
    os._exit(3)
"""


def test_session_that_dies_leaves_an_aborted_run(pytester: pytest.Pytester, db_url: str) -> None:
    """The writer sees its input end without a finish: what it got is kept, marked aborted."""
    pytester.makepyfile(test_dies=KILLED_SESSION)
    results = pytester.path / "results"
    result = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS, f"--ledger={db_url}", f"--ledger-results-dir={results}"
    )
    assert result.ret == 3
    # The writer outlives the session by the time it takes to start and finish the run.
    run: dict[str, Any] = {}
    for _ in range(600):
        found = list(results.glob("runs/*/run.json"))
        if found:
            run = json.loads(found[0].read_text())
            if run["status"] != "running":
                break
        time.sleep(0.1)
    assert run["status"] == "aborted" and run["database"]["state"] == "synced"
    (stored,) = rows(db_url, "SELECT status, total_tests, notes FROM test_runs")
    assert stored["status"] == "aborted" and stored["total_tests"] == 2
    assert "ended before the run was finished" in stored["notes"]


def test_psycopg_errors_count_once_psycopg_is_imported() -> None:
    """Recording into SQLite does not import psycopg just to name its errors."""
    code = textwrap.dedent(
        """
        import sys
        from testledger.store.database import database_errors
        before = "psycopg" in sys.modules
        import psycopg
        print(before, psycopg.Error in database_errors())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]


# Messages cut into pieces as a pipe may deliver them: (name, messages, chunk size).
FRAME_CASES = [
    ("one_whole", [("ack", 1)], 1 << 16),
    ("many_whole", [("ack", n) for n in range(50)], 1 << 16),
    ("byte_by_byte", [("ack", 7), ("done", {"problems": [], "run_id": 3})], 1),
    ("split_headers", [("batch", 1, [("t::a", 1, 0.5, 1.0, 2.0, None)] * 40)], 3),
]


@pytest.mark.parametrize(
    ("name", "messages", "chunk"), FRAME_CASES, ids=[case[0] for case in FRAME_CASES]
)
def test_frames_survive_any_chunking(
    name: str, messages: list[Any], chunk: int, tmp_path: Path
) -> None:
    data = b"".join(encode_frame(message) for message in messages)
    read_fd, write_fd = os.pipe()
    reader = FrameReader(read_fd)
    got: list[Any] = []
    for start in range(0, len(data), chunk):
        os.write(write_fd, data[start : start + chunk])
        got.extend(reader.poll())
    os.close(write_fd)
    while (message := reader.wait()) is not None:
        got.append(message)
    os.close(read_fd)
    assert got == messages and reader.closed
    # The blocking reader of the writer's side reads the same stream.
    stream = tmp_path / "frames.bin"
    stream.write_bytes(data + data[:3])  # and a torn last frame is the end
    with stream.open("rb") as handle:
        replayed = []
        while (message := read_frame(handle)) is not None:
            replayed.append(message)
    assert replayed == messages


def test_the_writer_drains_the_pipe_while_it_is_still_starting() -> None:
    # The writer takes about half a second to import, migrate and detect git before it
    # records anything; the session must not block on a full pipe meanwhile. Three batches of
    # ~300 KB each are several pipe buffers: they only go through if the pipe is read ahead.
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        next_frame = _read_ahead(reader)
        batch = [(f"{number:04d}" + "x" * 1000, number) for number in range(300)]
        written = threading.Event()

        def session() -> None:
            for seq in range(3):
                writer.write(encode_frame(("batch", seq, batch)))
                writer.flush()
            writer.close()
            written.set()

        threading.Thread(target=session, daemon=True).start()
        assert written.wait(10), "the session blocked: nothing drained the pipe"
        frames = [next_frame() for _ in range(3)]
        assert [(frame[0], frame[1], len(frame[2])) for frame in frames] == [
            ("batch", 0, 300),
            ("batch", 1, 300),
            ("batch", 2, 300),
        ]
        assert next_frame() is None
