"""Importers as an extension point: a third-party format found through a real entry point of the
group ``testledger.importers`` (a distribution made in tmp_path, put on sys.path), imported into
the ledger on SQLite and PostgreSQL; broken plugins skipped with a warning naming their
distribution, the built-ins still working."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from testledger.cli import main
from testledger.ingest import discovery, parse_ahead
from testledger.ingest.base import ImportFormatError
from testledger.ingest.importer import ImportOptions, ImportOutcome, content_key, import_parsed
from testledger.ingest.registry import (
    BUILT_IN_FORMATS,
    FORMATS,
    detect_format,
    expand_paths,
    is_report,
    parse_source,
)
from testledger.record.ledger import Ledger
from tests.helpers import query

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: A whole third-party importer, as a plugin's author writes it: one line per test,
#: ``<status> <test id> <seconds> [message]`` under an ``ACME-RESULTS`` header line.
ACME = """
from pathlib import Path

from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.model import RunInfo, Status, TestResult

FORMAT = "acme"
PARSE_AHEAD = {parse_ahead}
READS_FOLDERS = False
SUFFIXES = (".acme",)
_STATUSES = {{"ok": Status.PASS, "bad": Status.FAIL, "skip": Status.SKIP}}


def sniff(path: Path, head: bytes) -> bool:
    return head.startswith(b"ACME-RESULTS")


def _results(path: Path, lines: list[str]):
    for number, line in enumerate(lines[1:], start=2):
        status, test_id, seconds, *message = line.split(maxsplit=3)
        if status not in _STATUSES:
            raise ImportFormatError(path, f"unknown status {{status!r}}", number)
        tool, _, variation = test_id.partition("::")
        yield TestResult(
            test_id=test_id,
            tool_name=tool,
            variation=variation,
            status=_STATUSES[status],
            duration_secs=float(seconds),
            error_message=message[0] if message else None,
        )


def parse(path: Path) -> ParsedFile:
    lines = path.read_text().splitlines()
    run = RunInfo(host="acme-ci", metadata={{"format": FORMAT}})
    return ParsedFile(path=path, format=FORMAT, run=run, results=_results(path, lines))
"""

ACME_REPORT = """ACME-RESULTS
ok suite_a::test_one 0.5
bad suite_a::test_two 1.25 expected 3, got 4
skip suite_b::test_three 0
"""


class Site:
    """A folder on sys.path where distributions are "installed" as pip would: their modules,
    and a ``*.dist-info`` folder with METADATA and entry_points.txt."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(self, distribution: str, entries: dict[str, str], modules: dict[str, str]) -> None:
        for name, source in modules.items():
            (self.root / f"{name}.py").write_text(textwrap.dedent(source))
            self.modules.append(name)
        info = self.root / f"{distribution.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n"
        )
        lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[{discovery.ENTRY_POINT_GROUP}]\n{lines}")
        # importlib.metadata caches a folder's listing by its mtime, which a quick second
        # install may not change.
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made = Site(root)
    discovery.clear_cache()
    yield made
    discovery.clear_cache()
    # The next test's distribution of the same name lives in another tmp_path.
    for name in made.modules:
        sys.modules.pop(name, None)


def install_acme(site: Site, *, parse_ahead: bool = False) -> None:
    site.install(
        "acme-testledger",
        {"acme": "acme_importer"},
        {"acme_importer": ACME.format(parse_ahead=parse_ahead)},
    )


def import_all(ledger: Ledger, *paths: Path, format_name: str | None = None) -> list[ImportOutcome]:
    """What ``testledger import PATH...`` does, through the library: sources expanded, each
    detected (unless ``format_name``) and parsed, its runs written."""
    outcomes = []
    for found in expand_paths([str(path) for path in paths]):
        assert not isinstance(found, ImportFormatError), found
        for parsed in parse_source(found.path, format_name):
            outcomes.append(
                import_parsed(
                    ledger.engine(),
                    parsed,
                    ImportOptions(branch="main"),
                    content_run_key=content_key(parsed.path, parsed.format),
                    reparse=lambda path=parsed.path, name=parsed.format: FORMATS[name].parse(path),
                )
            )
    return outcomes


def write_acme(folder: Path, name: str = "nightly.acme") -> Path:
    path = folder / name
    path.write_text(ACME_REPORT)
    return path


def write_junit(folder: Path) -> Path:
    path = folder / "junit.xml"
    path.write_text(
        '<testsuites><testsuite name="s" tests="1"><testcase classname="m" name="t"/>'
        "</testsuite></testsuites>"
    )
    return path


def plugin_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- a working plugin


def test_a_plugin_format_is_imported_into_the_ledger(
    site: Site, ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    install_acme(site)
    report = write_acme(tmp_path)
    assert detect_format(report).FORMAT == "acme"
    [outcome] = import_all(ledger, report)
    assert (outcome.format, outcome.results, outcome.already_imported) == ("acme", 3, False)
    rows = query(
        db_url,
        "SELECT test_id, tool_name, variation, status, duration_secs, error_message "
        "FROM test_results ORDER BY test_id",
    )
    assert rows == [
        ("suite_a::test_one", "suite_a", "test_one", "PASS", 0.5, None),
        ("suite_a::test_two", "suite_a", "test_two", "FAIL", 1.25, "expected 3, got 4"),
        ("suite_b::test_three", "suite_b", "test_three", "SKIP", 0.0, None),
    ]
    assert query(db_url, "SELECT source, host, branch_name, total_tests FROM test_runs") == [
        ("import:acme", "acme-ci", "main", 3)
    ]
    # Imported again: the same content key, nothing added, as for a built-in format.
    [again] = import_all(ledger, report)
    assert again.already_imported
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(3,)]


def test_testledger_import_reads_a_plugin_format(
    site: Site, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_acme(site)
    report = write_acme(tmp_path)
    assert main(["--db", db_url, "import", str(report), "--branch", "main"]) == 0
    assert "(acme): 3 result(s) -> run 1" in capsys.readouterr().out
    renamed = tmp_path / "renamed.txt"
    renamed.write_text(ACME_REPORT + "ok suite_c::test_four 2\n")
    assert main(["--db", db_url, "import", str(renamed), "--format", "acme"]) == 0
    assert "(acme): 4 result(s) -> run 2" in capsys.readouterr().out
    assert main(["--db", db_url, "import", str(renamed), "--format", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown format 'nope' (junit, exai, " in err and ", allure, acme)" in err
    assert query(db_url, "SELECT source, COUNT(*) FROM test_runs GROUP BY source") == [
        ("import:acme", 2)
    ]
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(7,)]


def test_a_plugin_comes_after_the_built_ins_and_plugins_by_name(site: Site) -> None:
    install_acme(site)
    # Installed in the other order, the second distribution's format sorts first.
    site.install("zed-formats", {"beta": "beta_importer"}, {"beta_importer": _renamed("beta")})
    assert list(FORMATS) == [*BUILT_IN_FORMATS, "acme", "beta"]
    assert BUILT_IN_FORMATS == (
        "junit",
        "exai",
        "ctrf",
        "pytest-json",
        "pytest-reportlog",
        "allure",
    )


def test_format_option_and_folder_search_know_plugin_formats(
    site: Site, ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    install_acme(site)
    folder = tmp_path / "ci"
    folder.mkdir()
    write_acme(folder, "one.acme")
    (folder / "two.log").write_text(ACME_REPORT + "ok suite_c::test_four 2\n")
    # A folder is searched for the plugin's SUFFIXES; a file named otherwise is read with
    # --format.
    found = [f.path.name for f in expand_paths([str(folder)]) if not isinstance(f, Exception)]
    assert found == ["one.acme"]
    assert is_report(folder / "one.acme")
    [by_search] = import_all(ledger, folder)
    [by_option] = import_all(ledger, folder / "two.log", format_name="acme")
    assert (by_search.results, by_option.results) == (3, 4)
    assert query(db_url, "SELECT COUNT(*) FROM test_runs") == [(2,)]


def test_unknown_format_and_unrecognised_file_errors_list_plugin_formats(
    site: Site, tmp_path: Path
) -> None:
    install_acme(site)
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing to see")
    with pytest.raises(ImportFormatError, match=r"unknown format 'nope' \(junit, .*, acme\)"):
        list(parse_source(notes, "nope"))
    with pytest.raises(ImportFormatError, match=r"not a report format testledger knows .*acme"):
        detect_format(notes)


def test_a_plugin_format_is_parsed_ahead_in_the_second_process(
    site: Site, ledger: Ledger, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child finds the plugin as this process does when it is installed: here, on its path.
    install_acme(site, parse_ahead=True)
    monkeypatch.setenv("PYTHONPATH", str(site.root))
    monkeypatch.setattr(parse_ahead, "MIN_BYTES", 0)
    started: list[str] = []
    real = parse_ahead.ParseAhead

    def spied(path: Path, format_name: str, remember: int) -> parse_ahead.ParseAhead:
        started.append(format_name)
        return real(path, format_name, remember)

    monkeypatch.setattr(parse_ahead, "ParseAhead", spied)
    [outcome] = import_all(ledger, write_acme(tmp_path))
    assert started == ["acme"]
    assert outcome.results == 3 and outcome.warnings == []
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(3,)]


def test_built_ins_are_found_without_scanning_distributions(site: Site) -> None:
    # The parse-ahead child looks up its (built-in) format and must start fast.
    install_acme(site)
    assert FORMATS["junit"].FORMAT == "junit"
    assert discovery._discover.cache_info().currsize == 0
    assert FORMATS["acme"].FORMAT == "acme"
    assert discovery._discover.cache_info().currsize == 1


def test_pyproject_declares_the_built_ins_as_entry_points() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][
        discovery.ENTRY_POINT_GROUP
    ]
    assert declared == {importer.FORMAT: importer.__name__ for importer in discovery.BUILT_IN}


# --------------------------------------------------------------------------- broken plugins


def _renamed(format_name: str) -> str:
    return ACME.format(parse_ahead=False).replace('FORMAT = "acme"', f"FORMAT = {format_name!r}")


BROKEN: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    # case: (entry points, modules, what the warning says)
    "import-error": (
        {"boom": "boom_importer"},
        {"boom_importer": "import not_installed_anywhere\n"},
        "cannot be loaded: ModuleNotFoundError: No module named 'not_installed_anywhere'",
    ),
    "missing-attribute": (
        {"boom": "boom_importer:importer"},
        {"boom_importer": "imported = True\n"},
        "cannot be loaded: AttributeError",
    ),
    "not-an-importer": (
        {"boom": "boom_importer"},
        {"boom_importer": 'FORMAT = "boom"\ndef sniff(path):\n    return False\n'},
        "not an importer: PARSE_AHEAD is missing or not a bool; READS_FOLDERS is missing or not "
        "a bool; SUFFIXES is missing or not a tuple of file name endings; sniff() does not take "
        "(path, head); parse() is missing",
    ),
    "format-not-its-name": (
        {"boom": "boom_importer"},
        {"boom_importer": _renamed("acme")},
        "FORMAT 'acme' is not its entry point's name 'boom'",
    ),
    "built-in-name": (
        {"junit": "boom_importer"},
        {"boom_importer": "raise RuntimeError('must never be imported')\n"},
        "'junit' is a built-in format of testledger",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_plugin_is_skipped_with_a_warning_naming_its_distribution(
    site: Site,
    ledger: Ledger,
    db_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    entries, modules, reason = BROKEN[case]
    site.install("broken-plugin", entries, modules)
    install_acme(site)
    with caplog.at_level(logging.WARNING, logger="testledger"):
        formats = list(FORMATS)
    [warning] = plugin_warnings(caplog)
    name = next(iter(entries))
    assert warning.startswith(f"testledger: importer {name!r} of distribution 'broken-plugin' (")
    assert reason in warning
    # Skipped: the built-ins and the working plugin are there, and import.
    assert formats == [*BUILT_IN_FORMATS, "acme"]
    assert FORMATS["junit"] is sys.modules["testledger.ingest.formats.junit"]
    outcomes = import_all(ledger, write_junit(tmp_path), write_acme(tmp_path))
    assert [(o.format, o.results) for o in outcomes] == [("junit", 1), ("acme", 3)]
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(4,)]
    # Warned once: discovery is not repeated for every file.
    assert len(plugin_warnings(caplog)) == 1


def test_the_same_format_from_two_distributions_keeps_the_first_by_name(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    install_acme(site)
    site.install("zz-acme-fork", {"acme": "acme_fork"}, {"acme_fork": _renamed("acme")})
    with caplog.at_level(logging.WARNING, logger="testledger"):
        assert FORMATS["acme"] is sys.modules["acme_importer"]
    [warning] = plugin_warnings(caplog)
    assert "distribution 'zz-acme-fork'" in warning
    assert "already provided by 'acme-testledger'" in warning
    assert "acme_fork" not in sys.modules  # refused before its code ran


def test_a_plugin_whose_sniff_raises_does_not_stop_other_files(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raising = _renamed("flaky").replace(
        "    return head.startswith",
        "    raise OSError('disk on fire')\n    return head.startswith",
    )
    site.install("flaky-plugin", {"flaky": "flaky_importer"}, {"flaky_importer": raising})
    unknown = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in unknown:
        path.write_text('{"neither": "format"}')
    with caplog.at_level(logging.WARNING, logger="testledger"):
        assert detect_format(write_junit(tmp_path)).FORMAT == "junit"
        for path in unknown:
            with pytest.raises(ImportFormatError, match="not a report format"):
                detect_format(path)
    [warning] = plugin_warnings(caplog)
    assert "importer 'flaky' of distribution 'flaky-plugin' failed on" in warning
    assert "OSError: disk on fire" in warning


def test_a_distribution_with_unreadable_entry_points_is_skipped(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    install_acme(site)
    site.install("garbled", {}, {})
    info = site.root / "garbled-1.0.dist-info" / "entry_points.txt"
    info.write_text(f"[{discovery.ENTRY_POINT_GROUP}]\nthis line names nothing\n")
    with caplog.at_level(logging.WARNING, logger="testledger"):
        assert list(FORMATS) == [*BUILT_IN_FORMATS, "acme"]
    [warning] = plugin_warnings(caplog)
    assert "the importers of distribution 'garbled' skipped" in warning


def test_discovery_is_lazy_and_cleared(site: Site) -> None:
    install_acme(site)
    assert "acme" in FORMATS
    site.install("late", {"beta": "beta_importer"}, {"beta_importer": _renamed("beta")})
    assert "beta" not in FORMATS  # found once per process...
    discovery.clear_cache()
    assert "beta" in FORMATS  # ...until asked to look again
