"""Runs finishing at once in one results folder: each publishes ``latest/`` without touching
another's files (8 processes at once, with hard links and with the copy fallback)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from testledger.model import RunInfo
from testledger.record.archive import RunArchive, read_events

PROCESSES = 8
ROWS = 200
ROUNDS = 40


def _row(key: str, index: int) -> tuple[Any, ...]:
    return (f"{key}/t{index}", 1, key, f"t{index}", None, None, "PASS") + (None,) * 17


def _finish_and_publish(results_dir: str, key: str, barrier: Any, copy: bool, errors: Any) -> None:
    try:
        if copy:  # as on a file system without hard links

            def no_link(*_args: object, **_kwargs: object) -> None:
                raise OSError("no hard links here")

            os.link = no_link  # type: ignore[assignment]
        archive = RunArchive(Path(results_dir), key)
        archive.write_run(RunInfo(run_key=key), status="running")
        for index in range(ROWS):
            archive.append_row(_row(key, index))
        archive.write_run(RunInfo(run_key=key), status="finished")
        archive.close()
        barrier.wait(timeout=60)
        for _ in range(ROUNDS):
            archive.publish_latest()
    except BaseException as exc:  # reported to the test, whatever it is
        errors.put(f"{key}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("copy", [False, True], ids=["hard-link", "copy"])
def test_eight_runs_publishing_at_once_keep_every_file_intact(tmp_path: Path, copy: bool) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    errors = context.Queue()
    keys = [f"run-{index}" for index in range(PROCESSES)]
    processes = [
        context.Process(
            target=_finish_and_publish, args=(str(tmp_path), key, barrier, copy, errors)
        )
        for key in keys
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    for key in keys:
        events = list(read_events(tmp_path / "runs" / key / "results.jsonl"))
        assert [e.test_id for e in events] == [f"{key}/t{i}" for i in range(ROWS)]  # type: ignore[union-attr]
        state = json.loads((tmp_path / "runs" / key / "run.json").read_text())
        assert state["run_key"] == key and state["status"] == "finished"
    latest = tmp_path / "latest"
    assert sorted(p.name for p in latest.iterdir()) == ["results.jsonl", "run.json"]
    published = [e.test_id for e in read_events(latest / "results.jsonl")]  # type: ignore[union-attr]
    assert len(published) == ROWS and published[0].split("/")[0] in keys
    assert json.loads((latest / "run.json").read_text())["run_key"] in keys
