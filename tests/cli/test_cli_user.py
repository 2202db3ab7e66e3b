"""The command line as a new user meets it: bracketed and hostile names printed as they are,
one-line errors for bad options and URLs, reading commands that never create a ledger, tables
that keep whole test ids at 80 columns, and consistent options."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from testledger import Ledger
from testledger.cli import main
from testledger.cli.app import console

START = datetime(2025, 11, 3, 9, 0, tzinfo=timezone.utc)
ROUTE = "tests/test_api.py::test_route[/api/users]"
DASHED = "tests/test_x.py::test_x[a-b]"
MARKUP = "tests/test_m.py::test_m[[red]x[/red]]"
ESCAPE = "\x1b[31mRED\x1b[0m"
MESSAGE = f"bad [red]thing[/red] {ESCAPE} :smile:"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _record(ledger: Ledger, index: int, route_status: str) -> None:
    with ledger.start_run(
        branch="feat[1]",
        commit=f"c{index}[x]",
        suite="s",
        run_key=f"run-{index}",
        started_at=START + timedelta(hours=index),
        detect_environment=False,
        notes=f"note [b]{index}[/b]",
    ) as run:
        for test_id, status in ((ROUTE, route_status), (DASHED, "FAIL"), (MARKUP, "PASS")):
            tool, _, variation = test_id.partition("::")
            run.record(
                test_id=test_id,
                tool_name=tool,
                variation=variation,
                status=status,
                duration_secs=0.5 + index,
                error_type="AssertionError" if status == "FAIL" else None,
                error_message=MESSAGE if status == "FAIL" else None,
            )


@pytest.fixture
def hostile(ledger: Ledger, db_url: str) -> str:
    """Two runs whose test ids, messages, branch, commit and notes are shaped like markup."""
    _record(ledger, 0, "PASS")
    _record(ledger, 1, "FAIL")
    return db_url


def _column_text(out: str, header: str) -> str:
    """Every line's text under ``header`` in the table whose header row names it, joined: a
    wrapped cell comes back whole."""
    lines = out.splitlines()
    for number, line in enumerate(lines):
        names = line.split()
        if header in names:
            start = line.index(f" {header} ") + 1
            following = names[names.index(header) + 1 :]
            end = line.index(f" {following[0]} ", start) + 1 if following else None
            return "".join(row[start:end].strip() for row in lines[number + 1 :])
    raise AssertionError(f"no table with a {header!r} column in:\n{out}")


READING_VIEWS = [
    ("show",),
    ("show", "run-0"),
    ("issues",),
    ("history", "test_route"),
    ("compare",),
    ("runs",),
]


@pytest.mark.parametrize("argv", READING_VIEWS, ids=lambda argv: " ".join(argv))
def test_bracketed_and_hostile_text_is_printed_as_it_is(
    hostile: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, err = cli(capsys, "--db", hostile, *argv)
    assert (code, err) == (0, "")
    assert "\x1b" not in out  # no escape sequence reaches the terminal raw
    shown = {
        "show": [ROUTE, DASHED, "feat[1]", "c1[x]", "note [b]1[/b]", "\\x1b[31mRED\\x1b[0m"],
        "issues": ["bad [red]thing[/red] \\x1b[31mRED"],
        "history": [ROUTE, "feat[1]", ":smile:"],
        "compare": [ROUTE, DASHED, "feat[1]"],
        "runs": ["feat[1]"],
    }[argv[0]]
    if argv == ("show", "run-0"):
        shown = [DASHED, "note [b]0[/b]"]
    for text in shown:
        assert text in out


def test_an_issue_page_keeps_every_bracket(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = cli(capsys, "--db", hostile, "issues", "--json")
    code = json.loads(out)[0]["code"]
    status, out, err = cli(capsys, "--db", hostile, "issue", code)
    assert (status, err) == (0, "")
    assert "[red]thing[/red]" in out and "\\x1b[31m" in out and "\x1b" not in out
    assert DASHED in out or ROUTE in out


def test_errors_show_control_characters_visibly(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "--db", hostile, "history", "no\x1b[2Jsuch")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "\x1b" not in err and "no\\x1b[2Jsuch" in err


@pytest.mark.parametrize("width", [80, 160])
def test_tables_keep_whole_test_ids(
    hostile: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setattr(console, "_width", width)
    _, out, _ = cli(capsys, "--db", hostile, "show")
    assert max(len(line) for line in out.splitlines()) <= width
    tests = _column_text(out, "test")
    assert ROUTE in tests and DASHED in tests
    assert "…" not in out
    _, out, _ = cli(capsys, "--db", hostile, "history", "test_route")
    assert max(len(line) for line in out.splitlines()[1:]) <= width
    assert "bad[red]thing[/red]" in _column_text(out, "error").replace(" ", "")


BAD_URLS = [
    ("postgresql://user:secret@host:abc/db", "its port is not a number"),
    ("htp:/garbage:pw@@", "not a database URL"),
    ("mysql://user@host/db", "unsupported database 'mysql'"),
]
COMMANDS = [
    ("runs",),
    ("show",),
    ("sync",),
    ("detect",),
    ("issues",),
    ("issue", "X-1"),
    ("explain", "1"),
    ("flaky",),
    ("regressions",),
    ("compare",),
    ("gate", "--max-new-failures", "0"),
    ("summary",),
    ("trend",),
    ("history", "x"),
    ("cost",),
    ("query", "latest-run"),
    ("export", "runs"),
    ("report", "--json"),
    ("watch",),
    ("db", "current"),
    ("db", "upgrade"),
]


@pytest.mark.parametrize("url, reason", BAD_URLS, ids=["port", "garbage", "mysql"])
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv))
def test_a_bad_url_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
    url: str,
    reason: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *argv, "--db", url)
    assert code == 1, out
    assert err.count("\n") == 1 and err.startswith("error: ") and reason in err
    assert "secret" not in err
    assert list(tmp_path.iterdir()) == []  # nothing was created, not even a file named so


def test_postgresql_without_psycopg_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as after `pip install testledger[demo]`
    code, _, err = cli(capsys, "--db", "postgresql://u:pw@127.0.0.1:1/db", "runs")
    assert code == 1
    assert err == "error: PostgreSQL needs the psycopg driver: pip install 'testledger[postgres]'\n"


READING_COMMANDS = [argv for argv in COMMANDS if argv not in (("sync",), ("db", "upgrade"))]


@pytest.mark.parametrize("argv", READING_COMMANDS, ids=lambda argv: " ".join(argv))
def test_reading_commands_never_create_a_ledger(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    target = tmp_path / "nonexistent" / "ledger.db"
    code, out, err = cli(capsys, "--db", f"sqlite:///{target}", *argv)
    assert not target.parent.exists()
    if argv == ("db", "current"):  # says what is there: nothing
        assert code == 0 and "(empty: " in out
        return
    assert code == 1 and err == (
        f"error: no ledger at {target}: record a run first (pytest --ledger, testledger import), "
        "or name the ledger with --db\n"
    )


def test_reading_an_empty_database_creates_no_schema(
    capsys: pytest.CaptureFixture[str], empty_db_url: str
) -> None:
    code, _, err = cli(capsys, "--db", empty_db_url, "runs")
    assert code == 1 and "no ledger" in err
    code, out, _ = cli(capsys, "--db", empty_db_url, "db", "current", "--json")
    assert json.loads(out)["empty"] is True


BAD_OPTIONS = [
    (("runs", "--bogus"), "No such option: --bogus"),
    (("runs", "-n", "many"), "'--limit' / '-n'"),
    (("nosuch",), "No such command 'nosuch'"),
    (("issues", "--priority", "URGENT"), "unknown priority 'URGENT'"),
    (("issues", "--status", "bogus"), "unknown issue status 'bogus'"),
    (("gate", "--min-pass-rate", "150"), "--min-pass-rate"),
    (("import", "--format", "nope", "x.txt"), "unknown format 'nope'"),
    (("compare", "--baseline", "main", "1", "2"), "either a BASELINE run or --baseline"),
]


@pytest.mark.parametrize("argv, says", BAD_OPTIONS, ids=lambda v: str(v))
def test_bad_options_are_one_line_and_exit_1(
    hostile: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    code, out, err = cli(capsys, "--db", hostile, *argv)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err


def test_filters_that_match_nothing_say_so(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--db", hostile, "runs", "--branch", "nosuch")[1] == "No runs match.\n"


def test_limit_means_the_same_everywhere(hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("runs",), ("trend",), ("cost",), ("history", "test_route"), ("issues",)):
        assert cli(capsys, "--db", hostile, *argv, "-n", "1", "--json")[0] == 0, argv
        assert cli(capsys, "--db", hostile, *argv, "--limit", "1", "--json")[0] == 0, argv


def test_help_names_placeholders_and_groups_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--help")[0] == 0
    out = capsys.readouterr().out or cli(capsys, "--help")[1]
    sections = [line for line in out.splitlines() if line.endswith("commands:")]
    assert sections[:4] == [
        "Record commands:",
        "Inspect commands:",
        "Detect commands:",
        "Report commands:",
    ]
    for argv in (("issue",), ("cost",), ("import",), ("compare",), ("explain",)):
        _, out, _ = cli(capsys, *argv, "--help")
        assert "<str>" not in out and "<int" not in out and "PATH..." not in out, argv
    _, out, _ = cli(capsys, "issue", "--help")
    for option in ("--root-cause", "--resolution", "--title", "--priority"):
        line = next(line for line in out.splitlines() if option in line)
        assert len(line.split()) > 2, line  # it has help text


def test_show_lists_result_ids_and_explain_finds_them(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = cli(capsys, "--db", hostile, "show", "--json")
    failing = {test["test_id"]: test["result_id"] for test in json.loads(out)["failing"]}
    assert set(failing) == {ROUTE, DASHED}
    _, out, _ = cli(capsys, "--db", hostile, "show")
    assert str(failing[ROUTE]) in _column_text(out, "result")
    by_id = cli(capsys, "--db", hostile, "explain", str(failing[ROUTE]), "--json")[1]
    by_test = cli(capsys, "--db", hostile, "explain", "test_route", "--json")[1]
    assert json.loads(by_id) == json.loads(by_test)
    assert json.loads(by_id)["result_id"] == failing[ROUTE]
    code, _, err = cli(capsys, "--db", hostile, "explain", "test_m", "--run", "run-1")
    assert code == 1 and "is PASS, not a failure" in err


def test_compare_says_when_the_baseline_is_newer(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = cli(capsys, "--db", hostile, "compare", "run-0", "run-1")
    assert "note: the baseline, run" in out and "is newer than run" in out
    _, out, _ = cli(capsys, "--db", hostile, "compare", "run-1", "run-0")
    assert "note:" not in out


def test_plain_summaries(hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "--db", hostile, "cost")
    assert "watcher: no spend recorded" in out and "$-, -" not in out
    runs = json.loads(cli(capsys, "--db", hostile, "runs", "--json")[1])
    assert "total_duration_secs" not in runs[0] and runs[0]["duration_secs"] is not None
