"""``testledger import`` end to end, against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testledger.cli import main
from testledger.ingest import importer, parse_ahead
from testledger.ingest.base import ImportFormatError
from testledger.ingest.formats import junit as junit_format
from testledger.ingest.registry import detect_format
from testledger.store.database import connect_engine
from tests.bigfiles import write_import_junit
from tests.helpers import query

DATA = Path(__file__).resolve().parents[1] / "data"


def junit(cases: list[tuple[str, str, str]], *, timestamp: str = "2025-10-07T12:00:00") -> str:
    """A small pytest-style JUnit document: (classname, name, outcome) with outcome one of
    pass / fail / error / skip."""
    body = []
    for classname, name, outcome in cases:
        inner = {
            "pass": "",
            "fail": '<failure message="assert 1 == 2">E  assert 1 == 2</failure>',
            "error": '<error message="fixture broke">setup failed</error>',
            "skip": '<skipped message="not today"/>',
        }[outcome]
        body.append(
            f'<testcase classname="{classname}" name="{name}" time="0.5">{inner}</testcase>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        f'tests="{len(cases)}" timestamp="{timestamp}" hostname="ci-1">'
        + "".join(body)
        + "</testsuite></testsuites>"
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


CASES = [
    ("tests.test_a", "test_one", "pass"),
    ("tests.test_a", "test_two", "fail"),
    ("tests.test_b", "test_three", "error"),
    ("tests.test_b", "test_four", "skip"),
]


def test_import_then_again_adds_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(junit(CASES))
    code, out, _ = cli(
        capsys, "--db", db_url, "import", str(report), "--branch", "main", "--commit", "abc"
    )
    assert code == 0, out
    assert "4 result(s) -> run 1" in out
    code, out, _ = cli(capsys, "--db", db_url, "import", str(report), "--json")
    data = json.loads(out)
    assert data["imported"] == [] and len(data["already_imported"]) == 1
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(4,)]
    [run] = query(
        db_url,
        "SELECT branch_name, commit_hash, total_tests, tests_passed, tests_failed, "
        "tests_skipped, tests_errored, source, host FROM test_runs",
    )
    assert run == ("main", "abc", 4, 1, 2, 1, 1, "import:junit", "ci-1")
    statuses = query(db_url, "SELECT test_id, status FROM test_results ORDER BY test_id")
    assert statuses == [
        ("tests.test_a::test_one", "PASS"),
        ("tests.test_a::test_two", "FAIL"),
        ("tests.test_b::test_four", "SKIP"),
        ("tests.test_b::test_three", "ERROR"),
    ]


def test_shards_merge_into_one_run_with_a_run_key(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "shard-1.xml").write_text(junit(CASES[:2]))
    (tmp_path / "shard-2.xml").write_text(junit(CASES[2:]))
    args = ["--db", db_url, "import", str(tmp_path / "shard-*.xml"), "--run-key", "ci-77"]
    assert cli(capsys, *args)[0] == 0
    assert cli(capsys, *args)[0] == 0  # again: nothing doubles
    assert query(db_url, "SELECT run_key, total_tests FROM test_runs") == [("ci-77", 4)]
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(4,)]


def test_a_bad_file_writes_nothing_and_the_others_still_import(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.xml"
    good.write_text(junit(CASES))
    # Malformed far into the file: the first thousands of results parse before the error.
    many = [("tests.big", f"test_{i}", "pass") for i in range(12_000)]
    broken = tmp_path / "broken.xml"
    broken.write_text(junit(many)[:-40])
    empty = tmp_path / "empty.xml"
    empty.write_text("")
    nunit = tmp_path / "nunit.xml"
    nunit.write_text('<?xml version="1.0"?><test-run id="2" testcasecount="1"></test-run>')
    bad_utf8 = tmp_path / "bad.json"
    bad_utf8.write_bytes(b'{"results": {"tool": {"name": "x"}, "tests": [\xff\xfe]}}')
    code, _, err = cli(
        capsys,
        "--db",
        db_url,
        "import",
        str(good),
        str(broken),
        str(empty),
        str(nunit),
        str(bad_utf8),
        str(tmp_path / "missing.xml"),
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1] == "1 run(s) imported, 5 file(s) failed"
    assert any(line.startswith(f"error: {broken}:") and "truncated" in line for line in lines)
    assert f"error: {empty}: empty file" in lines
    assert any(str(nunit) in line and "NUnit" in line for line in lines)
    assert any(str(bad_utf8) in line for line in lines)
    assert any("missing.xml: no such file or folder" in line for line in lines)
    # Only the good file's run and rows exist.
    assert query(db_url, "SELECT COUNT(*) FROM test_runs") == [(1,)]
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(4,)]


def test_a_folder_imports_every_report_under_it(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--db", db_url, "import", str(DATA / "junit"), "--json")
    data = json.loads(out)
    assert code == 0 and data["errors"] == []
    imported = sorted(Path(o["path"]).name for o in data["imported"])
    assert imported == sorted(p.name for p in (DATA / "junit").iterdir())
    assert query(db_url, "SELECT COUNT(*) FROM test_runs") == [(len(imported),)]


def test_at_and_suite_override_what_the_file_says(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.xml"
    report.write_text(junit(CASES))
    code, _, _ = cli(
        capsys,
        "--db",
        db_url,
        "import",
        str(report),
        "--at",
        "2024-01-02T03:04:05Z",
        "--suite",
        "nightly",
    )
    assert code == 0
    [(suite, stamp)] = query(db_url, "SELECT suite, run_timestamp FROM test_runs")
    assert suite == "nightly"
    assert str(stamp).startswith("2024-01-02")
    code, _, err = cli(capsys, "--db", db_url, "import", str(report), "--at", "yesterday")
    assert code == 1 and "--at: not an ISO-8601 time" in err


def test_shared_samples_import_or_fail_clearly(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = shared_dir / "fixtures" / "reports"
    code, out, _ = cli(capsys, "--db", db_url, "import", str(reports), "--json")
    data = json.loads(out)
    counts = {Path(o["path"]).name: o["results"] for o in data["imported"]}
    assert counts == {
        "ctrf-cli-with-retries.json": 4,
        "gotestsum-report.xml": 60,
        "jest-suite-failed-to-run.xml": 2,
        "horovod-spark-fail.xml": 5,
        "pytest8-xunit2-props.xml": 10,
        "surefire-2.22.1-flaky-and-rerun.xml": 11,
        "sample_report.json": 10,
        "pytest7.4-reportlog.jsonl": 11,
    }
    failed = {Path(e["path"]).name: e["reason"] for e in data["errors"]}
    assert set(failed) == {"horovod-truncated.xml", "xxe-doctype.xml"}
    assert "DTD" in failed["xxe-doctype.xml"]
    assert code == 1
    # The surefire flaky test is one test with four attempts, not four tests.
    rows = query(
        db_url,
        "SELECT t.test_id, COUNT(*), MAX(t.attempt) FROM test_results t "
        "JOIN test_runs r ON r.id = t.run_id WHERE r.suite = 'surefire3.FlakyTest' "
        "GROUP BY t.test_id ORDER BY t.test_id",
    )
    assert [(count, top) for _, count, top in rows] == [(4, 4), (1, 1), (6, 6)]


# The importing process, run on its own: with the product's buffer bounds lowered (each a fixed
# size, whatever the file) so that a small file already fills them, and with the peak memory of
# it and of its parse-ahead child reported. VmHWM, not ru_maxrss: a spawned process's ru_maxrss
# counts the pages of the (large) process that spawned it, which would hide any growth.
_MEASURED_IMPORT = """
import sys
from pathlib import Path

from testledger.analyze import detect
from testledger.cli import main
from testledger.ingest import importer, parse_ahead

BOUNDS = [
    (parse_ahead, "MIN_BYTES", 0),  # parse ahead in a second process at any size
    (importer, "_SQLITE_IMPORT_CACHE_KIB", 1024),  # SQLite page cache: 16 MiB
    (importer, "_RECENT_TESTS", 1000),  # test ids remembered to number attempts: 20,000
    (detect, "_CHUNK", 500),  # failures detected at a time: 5,000
]
for module, name, value in BOUNDS:
    assert hasattr(module, name), f"{module.__name__}.{name} is gone: update this test"
    setattr(module, name, value)
VMHWM = "next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:'))"
child_peak = Path(sys.argv[3])
parse_ahead._CHILD = (
    f"import atexit, pathlib; atexit.register(lambda: pathlib.Path({str(child_peak)!r})"
    f".write_text({VMHWM})); " + parse_ahead._CHILD
)
code = main(["--db", sys.argv[1], "import", sys.argv[2]])
print(eval(VMHWM), child_peak.read_text())
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads peak memory from /proc (Linux)")
def test_peak_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    """Importing 80,000 testcases takes no more memory than importing 10,000, in the importing
    process and in the one that parses the file for it (ingest.parse_ahead). A bounded check
    (about 10 s); bench/memory.py imports 1,000,000 with the product's own bounds."""

    def peak_kib(count: int) -> tuple[int, int]:
        report = tmp_path / f"big-{count}.xml"
        write_import_junit(report, count)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _MEASURED_IMPORT,
                f"sqlite:///{tmp_path}/m{count}.db",
                str(report),
                str(tmp_path / f"child-peak-{count}"),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert query(f"sqlite:///{tmp_path}/m{count}.db", "SELECT COUNT(*) FROM test_results") == [
            (count,)
        ]
        own, child = done.stdout.split()[-2:]
        return int(own), int(child)

    small, large = peak_kib(10_000), peak_kib(80_000)
    # Measured: both processes grow by under 1 MB from 10,000 to 80,000 testcases (the parser
    # notes each failing test, one in ten, to number a later attempt of it). Keeping anything
    # per testcase, even one reference and a test id (~75 bytes), would add over 5 MB.
    tolerance = 4 * 1024
    assert large[0] < small[0] + tolerance, ("importing process, KiB", small[0], large[0])
    assert large[1] < small[1] + tolerance, ("parse-ahead process, KiB", small[1], large[1])


def test_files_in_folders_that_are_no_reports_are_skipped_not_errors(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ci-output"
    folder.mkdir()
    (folder / "junit.xml").write_text(junit(CASES))
    (folder / "settings.json").write_text('{"retries": 3}')
    code, out, _ = cli(capsys, "--db", db_url, "import", str(folder), "--json")
    data = json.loads(out)
    assert code == 0 and data["errors"] == []
    assert [Path(p).name for p in data["skipped_not_reports"]] == ["settings.json"]
    # Named on the command line, the same file is an error.
    code, _, err = cli(capsys, "--db", db_url, "import", str(folder / "settings.json"))
    assert code == 1 and "not a report format testledger knows" in err


@pytest.mark.parametrize(
    ("name", "points_to_backfill"),
    [
        ("ISSUES_CHECKLIST.md", True),
        ("ISSUES_CHECKLIST_2.md", True),
        ("PHASE_2_HIGH_PRIORITY_FIXES_COMPLETE.md", True),
        ("NOTES.md", False),
    ],
)
def test_an_issue_checklist_given_to_import_points_to_backfill(
    tmp_path: Path, name: str, points_to_backfill: bool
) -> None:
    path = tmp_path / name
    path.write_text("# Production System Issues\n\n### [HIGH] Kimi times out\n")
    with pytest.raises(ImportFormatError) as info:
        detect_format(path)
    assert "not a report format testledger knows" in info.value.reason
    assert ("use testledger backfill" in info.value.reason) is points_to_backfill


@pytest.mark.parametrize(
    ("streamed", "parsed_ahead"),
    [(True, False), (True, True), (False, False)],
    ids=["streamed", "parsed-ahead", "batched"],
)
def test_a_test_repeated_further_apart_than_remembered_is_its_next_attempt(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    streamed: bool,
    parsed_ahead: bool,
) -> None:
    # The importer remembers only recent tests to number repeats; a repeat further away makes
    # the new run's stream (or a batch) hit the unique index, and is numbered after that.
    # Parsed ahead, the child process numbers them with the same memory and meets the same.
    monkeypatch.setattr(importer, "_RECENT_TESTS", 3)
    monkeypatch.setattr(parse_ahead, "MIN_BYTES", 0 if parsed_ahead else 1 << 40)
    others = [("c", f"other{i}", "pass") for i in range(10)]
    path = tmp_path / "far.xml"
    path.write_text(junit([("c", "t0", "pass"), *others, ("c", "t0", "fail")]))
    engine = connect_engine(db_url)
    try:
        outcome = importer.import_parsed(
            engine,
            junit_format.parse(path),
            importer.ImportOptions(detect_environment=False),
            content_run_key="far-apart",
            reparse=(lambda: junit_format.parse(path)) if streamed else None,
        )
    finally:
        engine.dispose()
    assert outcome.results == 12
    rows = query(db_url, "SELECT attempt, status FROM test_results WHERE test_id = 'c::t0'")
    assert sorted(rows) == [(1, "PASS"), (2, "FAIL")]
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(12,)]
