"""Malformed input never crashes an importer: it is parsed, or refused with ImportFormatError.

Mutated sample reports (tests/fuzzing.py) go through each importer's own ``parse`` (so that a
crash it lets through is found, not hidden by the import's guard) and through ``parse_source``,
the import's entry point; each within 1 s. The crashes fuzzing found are kept as a table.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testledger.ingest.base import FolderHistoryImporter, ImportFormatError
from testledger.ingest.discovery import FORMATS
from tests.fuzzing import SEEDS, Tally, Workspace, parse_all, run_one

#: A mutated input that takes longer than this has hung or blown up (each is a few KB and
#: parses in milliseconds). Generous, so that a loaded machine is not taken for a blow-up: a
#: run with four workers on two cores once took 1.4 s; bench/fuzz.py keeps the 1 s bound.
LIMIT_SECS = 5.0
_FUZZ = settings(
    max_examples=60,
    deadline=None,  # timed below, around the parse alone (not the writing of the input)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def _parse_raw(format_name: str, path: Path) -> None:
    """The importer's own parse, without the import's guard, every result consumed."""
    importer = FORMATS[format_name]
    if path.is_dir() and isinstance(importer, FolderHistoryImporter):
        runs = list(importer.parse_folder(path))
    else:
        runs = [importer.parse(path)]
    for parsed in runs:
        for _ in parsed.results:
            pass


@pytest.mark.parametrize("format_name", sorted(SEEDS))
@_FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_an_importer_parses_or_refuses_mutated_input(format_name: str, rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp))
        seed = rng.choice(SEEDS[format_name])
        for path, _data in workspace.inputs(rng, seed):
            started = time.perf_counter()
            try:
                _parse_raw(format_name, path)
            except ImportFormatError as exc:
                assert "\n" not in str(exc)
            assert time.perf_counter() - started < LIMIT_SECS


@pytest.mark.parametrize("format_name", sorted(SEEDS))
@_FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_parse_source_parses_or_refuses_mutated_input(format_name: str, rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tally = Tally()
        _data, crash, elapsed = run_one(Workspace(Path(tmp)), rng, format_name, tally)
        assert crash is None, tally.crashes
        assert elapsed < LIMIT_SECS


_JUNIT_NAN = (
    b'<?xml version="1.0" encoding="NaN"?>\n<testsuite name="s"><testcase name="t"/></testsuite>'
)
_REPORT = {
    "summary": {"session_start": "2025-10-07T13:46:36Z", "total_tests": 1},
    "failures": [{"tool": "chat", "variation": {"a": 1}, "status": "failed"}],
    "coverage": {"chat": {"variations": {"basic": "passed"}}},
}
_PYTEST_JSON = {
    "created": 1759844796.0,
    "duration": 10**400,
    "exitcode": 0,
    "root": "/r",
    "environment": {},
    "summary": {"collected": 0, "total": 0},
    "tests": [],
}
_CSV = b'"File","Tool","Variation","QualityScore"\n"a.json",chat,basic\rx,1\n'

#: Crashes fuzzing found, each as (format, file name, content, what the refusal says).
CRASHES = [
    pytest.param("junit", "r.xml", _JUNIT_NAN, "unknown encoding", id="junit-unknown-encoding"),
    pytest.param(
        "exai", "report.json", json.dumps(_REPORT).encode(), None, id="exai-dict-variation"
    ),
    pytest.param("pytest-json", "r.json", json.dumps(_PYTEST_JSON).encode(), None, id="huge-int"),
    pytest.param("exai", "watcher_analysis.csv", _CSV, "CSV", id="exai-csv-bare-cr"),
]


@pytest.mark.parametrize(("format_name", "name", "content", "said"), CRASHES)
def test_inputs_that_crashed_an_importer(
    tmp_path: Path, format_name: str, name: str, content: bytes, said: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for parse in (lambda: _parse_raw(format_name, path), lambda: parse_all(path, format_name)):
        try:
            parse()
        except ImportFormatError as exc:
            assert said is None or said in exc.reason
            assert str(exc).startswith(str(path))
        else:
            assert said is None, "parsed, where a refusal was expected"


def test_an_error_no_importer_meant_is_still_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard of parse_source: a plugin's (or a built-in's) unexpected exception."""
    path = tmp_path / "r.json"
    path.write_bytes((SEEDS["ctrf"][0]).read_bytes())

    def broken(_path: Path) -> None:
        raise KeyError("surprise\nsecond line")

    monkeypatch.setattr(FORMATS["ctrf"], "parse", broken)
    with pytest.raises(ImportFormatError) as raised:
        parse_all(path, "ctrf")
    assert str(raised.value).startswith(f"{path}: unreadable input (KeyError")
    assert "\n" not in str(raised.value)
