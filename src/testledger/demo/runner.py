"""``testledger demo``: a realistic ledger made by really running a small example suite.

The bundled suite (``demo/suite/``, package data) stands for an LLM-backed assistant project.
:func:`build_demo` copies it into a fresh folder, makes that folder a throwaway git repository,
and then, for each iteration of a short story, commits a ``demo_state.json`` holding the
iteration number and runs the suite with pytest and testledger's plugin in a subprocess, so
that every run has a real commit on branch ``main`` and is recorded exactly as a user's would
be. The suite reads the iteration and behaves accordingly:

* model-backed tests store provider, model, tokens and cost (varying run to run);
* ``test_web_search_tool`` times out now and then at any commit (flaky; retried once when
  pytest-rerunfailures is installed);
* ``test_render_report`` becomes five times slower at commit 8 (a duration regression of 80
  ms, past the default 10% and 50 ms minimums; the other tests' millisecond timings jitter by
  tens of percent, but by far less than 50 ms);
* ``test_extract_entities`` fails at commits 1-4, is fixed at 5 and breaks again at 10 with
  the same error (its issue is auto-resolved, then reopened as regressed);
* ``test_weather_tool_call`` starts failing at commit 12 (a new failure in the last run).

A subprocess rather than ``pytest.main`` in this process: pytest sessions leave state behind
(imported test modules, assertion rewriting, registered plugins), and a subprocess records the
runs exactly as ``pytest --ledger`` run by hand does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

import sqlalchemy as sa

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError, TestledgerError
from testledger.report.runs import find_run
from testledger.store.database import connect_engine
from testledger.store.tables import issues, test_runs

__all__ = [
    "DEFAULT_DIRECTORY",
    "DEFAULT_RUNS",
    "MARKER_FILE",
    "DemoResult",
    "DemoRun",
    "available_steps",
    "build_demo",
    "check_target",
    "inside",
    "report_steps",
]

DEFAULT_DIRECTORY = Path("testledger-demo")
DEFAULT_RUNS = 12
MAX_RUNS = 50
#: Its presence is what makes a folder a demo folder that ``--force`` may delete.
MARKER_FILE = ".testledger-demo"
SUITE_NAME = "demo"
BRANCH = "main"

#: The story's commit messages; the iterations between them tune things.
_STORY = {
    1: "Add the assistant and its test suite",
    5: "Fix entity extraction for organisations mid-sentence",
    8: "Render reports in a sandboxed template engine",
    10: "Refactor the extraction prompt",
    12: "Upgrade the tool-calling model",
}
_CHORES = (
    "Tune the summary prompt",
    "Bump the translation glossary",
    "Tidy the search tool's retries",
    "Update the price table",
)

#: Environment variables that would redirect or reshape the recorded runs.
_DROPPED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "TESTLEDGER_DATABASE_URL",
    "TESTLEDGER_RESULTS_DIR",
)

#: The demo project's issue rules: a known pattern gets its own issue, the rest are grouped by
#: fingerprint under the defaults.
_RULES = """\
[defaults]
category = "production"
priority = "MEDIUM"

[[rule]]
name = "search-backend-timeout"
title = "Search backend times out"
category = "infrastructure"
priority = "LOW"
[rule.match]
error_type = "^TimeoutError$"
message = "search backend did not answer"
"""

#: pytest's exit codes 0 (all passed) and 1 (some failed) are the demo working as planned.
_EXPECTED_EXIT_CODES = (0, 1)

Progress = Callable[[int, int, str], None]
"""Called as ``progress(done, total, message)`` before each run and once at the end."""


@dataclass(frozen=True)
class DemoRun:
    iteration: int
    commit: str
    message: str
    run_id: int
    run_key: str
    pytest_exit_code: int


@dataclass(frozen=True)
class DemoResult(JsonData):
    directory: Path
    database_url: str
    results_dir: Path
    html_path: Path
    runs: list[DemoRun]
    used_git: bool
    retries: bool
    seconds: float
    #: The issue of the bug that was fixed and came back (None with too few runs to see it).
    regressed_issue: str | None = None


def commit_message(iteration: int) -> str:
    return _STORY.get(iteration) or _CHORES[iteration % len(_CHORES)]


# -- the folder -------------------------------------------------------------------------------


def check_target(directory: Path, *, force: bool = False, database_url: str | None = None) -> None:
    """Raise ConfigError unless a demo may be made in ``directory`` (and ``database_url``):
    the folder is absent, empty, or (with ``force``) an earlier demo, and not inside one; the
    database holds no runs. Changes nothing."""
    # The demo's closing hints leave the reader in its folder: `testledger demo` run again from
    # there would make a second project and git repository inside the first.
    for parent in directory.resolve().parents:
        if (parent / MARKER_FILE).is_file():
            raise ConfigError(
                f"{parent} is a testledger demo folder: run the demo from outside it, "
                "or give --dir a folder outside it"
            )
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a folder; choose another --dir")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / MARKER_FILE).is_file():
            raise ConfigError(
                f"{directory} exists and is not a testledger demo folder; "
                "choose another --dir (the demo never overwrites other files)"
            )
        if not force:
            raise ConfigError(
                f"{directory} holds an earlier demo; use --force to replace it, "
                "or choose another --dir"
            )
    if database_url is not None:
        _check_empty(database_url)


def prepare_directory(directory: Path, *, force: bool = False) -> None:
    """Make ``directory`` an empty folder for a new demo (see :func:`check_target`)."""
    check_target(directory, force=force)
    if directory.is_dir() and any(directory.iterdir()):
        shutil.rmtree(directory)  # an earlier demo: check_target saw its marker
    directory.mkdir(parents=True, exist_ok=True)


def _copy_suite(target: Path) -> int:
    """The bundled suite's files into ``target``, read through importlib.resources so that
    an installed wheel works as well as a checkout. Returns how many files were copied."""
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for entry in resources.files("testledger.demo").joinpath("suite").iterdir():
        if entry.is_file() and entry.name.endswith(".py"):
            (target / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
            copied += 1
    if copied == 0:
        raise TestledgerError("the demo suite is missing from this installation of testledger")
    return copied


def _write_project(directory: Path, database_url: str | None) -> None:
    (directory / MARKER_FILE).write_text(
        "Made by `testledger demo`; `testledger demo --force` may replace this folder.\n",
        encoding="utf-8",
    )
    (directory / ".gitignore").write_text(
        "ledger.db*\nresults/\npytest-logs/\nreport.html\n__pycache__/\n", encoding="utf-8"
    )
    # database_url only for the demo's own SQLite file: a server URL may carry a password.
    tool = f'suite = "{SUITE_NAME}"\nresults_dir = "results"\n'
    if database_url is not None:
        tool = f"database_url = {json.dumps(database_url)}\n" + tool
    (directory / ".testledger").mkdir()
    (directory / ".testledger" / "rules.toml").write_text(_RULES, encoding="utf-8")
    (directory / "pyproject.toml").write_text(
        "# The testledger demo project, made by `testledger demo`.\n"
        "# Record another run: python -m pytest --ledger\n\n"
        f"[tool.testledger]\n{tool}\n"
        "[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'python_files = ["demo_*.py"]\n',
        encoding="utf-8",
    )


# -- git ----------------------------------------------------------------------------------------


def _git_env() -> dict[str, str]:
    # The user's git configuration (signing, hooks, templates) must not reach the throwaway
    # repository, nor a GIT_DIR pointing at another one.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="testledger demo",
        GIT_AUTHOR_EMAIL="demo@testledger.invalid",
        GIT_COMMITTER_NAME="testledger demo",
        GIT_COMMITTER_EMAIL="demo@testledger.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    return env


class _Repository:
    """The demo folder as a git repository; without git, commits are named by content."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.git = shutil.which("git")
        self._env = _git_env()
        if self.git is not None:
            try:
                self._run("init", "-q")
                # `git init -b` needs git 2.28; this works with any version.
                self._run("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
            except TestledgerError:
                self.git = None

    def _run(self, *args: str) -> str:
        assert self.git is not None
        done = subprocess.run(
            [self.git, "-c", "commit.gpgsign=false", *args],
            cwd=self.directory,
            env=self._env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise TestledgerError(f"git {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def commit(self, message: str, iteration: int) -> str:
        if self.git is None:
            state = (self.directory / "demo_state.json").read_bytes()
            return hashlib.sha1(state + message.encode(), usedforsecurity=False).hexdigest()
        self._run("add", "--all")
        self._run("commit", "-q", "-m", f"{message} (demo iteration {iteration})")
        return self._run("rev-parse", "HEAD")


# -- running the suite --------------------------------------------------------------------------


def _plugin_arguments() -> list[str]:
    """The plugins the demo's sessions load: testledger's, and pytest-rerunfailures where it is
    installed (the flaky test's retry). Every other installed plugin is left out (the sessions
    run with PYTEST_DISABLE_PLUGIN_AUTOLOAD): one that reorders, times out or reports would
    change the story, and loading them cost each session more than its tests (schemathesis
    and hypothesis: about a second, twelve times over)."""
    # Ours by its module (a bare checkout on PYTHONPATH has no entry point); rerunfailures by
    # its entry point's name, which pytest loads, and registers, under that name.
    plugins = ["testledger.record.pytest_plugin"]
    if rerunfailures_installed():
        plugins.append("rerunfailures")
    return ["-p", "no:cacheprovider", *(f"-p{plugin}" for plugin in plugins)]


#: The offline, deterministic watcher: it scores every result against the test's history.
WATCHER = "heuristic"


def _watcher_arguments() -> list[str]:
    """Live watching of each run (the plugin's ``--watcher``) where watchers are available."""
    if importlib.util.find_spec("testledger.analyze.watcher") is None:
        return []
    return [f"--watcher={WATCHER}"]


def rerunfailures_installed() -> bool:
    return any(ep.name == "rerunfailures" for ep in entry_points(group="pytest11"))


def _run_suite(
    directory: Path, database_url: str, results_dir: Path, commit: str, run_key: str
) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the demo repository
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # see _plugin_arguments
    command = [
        sys.executable,
        "-m",
        "pytest",
        *_plugin_arguments(),
        "-o",
        "python_files=demo_*.py",
        "--rootdir",
        str(directory),
        "tests",
        f"--ledger={database_url}",
        f"--ledger-suite={SUITE_NAME}",
        f"--ledger-branch={BRANCH}",
        f"--ledger-commit={commit}",
        f"--ledger-run-key={run_key}",
        f"--ledger-results-dir={results_dir}",
        # The demo shows each run's issues as soon as its session returns.
        "--ledger-wait-detection",
        *_watcher_arguments(),
        "-q",
    ]
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _check_runs(runs: int) -> None:
    if not 1 <= runs <= MAX_RUNS:
        raise ConfigError(f"runs must be between 1 and {MAX_RUNS}, not {runs}")


def build_demo(
    directory: Path,
    *,
    runs: int = DEFAULT_RUNS,
    force: bool = False,
    database_url: str | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Record ``runs`` runs of the bundled suite into a fresh ledger in ``directory`` (a
    SQLite file ``ledger.db`` there, or ``database_url``, which must hold no runs yet).

    Raises ConfigError for a folder or database it must not use, TestledgerError when the
    suite could not run."""
    _check_runs(runs)
    started = time.monotonic()
    directory = directory.resolve()
    own_database = database_url is None
    check_target(directory, force=force, database_url=database_url)
    prepare_directory(directory, force=force)
    url = database_url or f"sqlite:///{directory / 'ledger.db'}"
    results_dir = directory / "results"
    logs = directory / "pytest-logs"
    logs.mkdir()
    _write_project(directory, url if own_database else None)
    _copy_suite(directory / "tests")
    # Connected (and its schema made) before the first run, so that a database problem is
    # reported once, plainly, rather than by each pytest session.
    engine = connect_engine(url)
    repository = _Repository(directory)
    recorded: list[DemoRun] = []
    try:
        for iteration in range(1, runs + 1):
            message = commit_message(iteration)
            state = {"iteration": iteration, "runs": runs, "change": message}
            (directory / "demo_state.json").write_text(
                json.dumps(state, indent=2) + "\n", encoding="utf-8"
            )
            commit = repository.commit(message, iteration)
            if progress is not None:
                shown = f"recording run {iteration}/{runs} (commit {commit[:7]})"
                progress(iteration - 1, runs, shown)
            run_key = f"demo-{iteration:02d}-{commit[:12]}"
            code, output = _run_suite(directory, url, results_dir, commit, run_key)
            (logs / f"run-{iteration:02d}.txt").write_text(output, encoding="utf-8")
            if code not in _EXPECTED_EXIT_CODES:
                tail = "\n".join(output.strip().splitlines()[-15:])
                raise TestledgerError(
                    f"the demo suite could not run (pytest exit code {code}):\n{tail}"
                )
            with engine.connect() as connection:
                run_id = find_run(connection, run_key).id
            recorded.append(DemoRun(iteration, commit, message, run_id, run_key, code))
        with engine.connect() as connection:
            regressed = connection.execute(
                sa.select(issues.c.issue_code)
                .where(issues.c.regressed_run_id.is_not(None))
                .order_by(issues.c.id)
                .limit(1)
            ).scalar()
    finally:
        engine.dispose()
    if progress is not None:
        progress(runs, runs, f"recorded {runs} runs")
    return DemoResult(
        directory=directory,
        database_url=url,
        results_dir=results_dir,
        html_path=directory / "report.html",
        runs=recorded,
        used_git=repository.git is not None,
        retries=rerunfailures_installed(),
        seconds=round(time.monotonic() - started, 2),
        regressed_issue=regressed,
    )


def _check_empty(database_url: str) -> None:
    engine = connect_engine(database_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(test_runs)
            ).scalar_one()
    finally:
        engine.dispose()
    if count:
        raise ConfigError(
            f"the database already holds {count} run(s); the demo records into an empty one"
        )


# -- the reports --------------------------------------------------------------------------------


def report_steps(
    html_path: Path, regressed_issue: str | None = None
) -> list[tuple[str, list[str]]]:
    """What the demo shows after recording: (title, the command's arguments), in order."""
    steps = [
        ("Trend over the recorded runs", ["trend"]),
        ("The last run compared with the one before", ["compare"]),
        ("The latest run, with the heuristic watcher's quality scores", ["show"]),
        ("Issues: failures grouped by fingerprint, with their lifecycle", ["issues"]),
    ]
    if regressed_issue is not None:
        steps.append(("A bug fixed, then back: the issue's history", ["issue", regressed_issue]))
    return [
        *steps,
        ("Flaky tests", ["flaky"]),
        ("Regressions: change points in each test's metrics", ["regressions"]),
        ("HTML report", ["report", "--html", str(html_path)]),
    ]


def available_steps(
    steps: list[tuple[str, list[str]]], commands: Collection[str]
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """The steps whose command this installation has, and the others."""
    present = [step for step in steps if step[1][0] in commands]
    missing = [step for step in steps if step[1][0] not in commands]
    return present, missing


@contextmanager
def inside(directory: Path) -> Iterator[None]:
    """Work in ``directory`` for a while: the reports then read the demo project's settings
    (its pyproject.toml), not those of wherever the demo was started."""
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)
