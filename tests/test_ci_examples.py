"""The CI examples (``examples/ci``) run as they are written.

Each workflow's shell steps run in order, with bash as the CI runs them, in a project folder of
their own holding a tiny test suite, against a throwaway ledger (SQLite, and PostgreSQL), with
the CI variables they read set to test values and the venv's ``testledger`` and ``pytest`` first
on PATH. Three jobs, each in a fresh folder as a CI job gets a fresh checkout:

1. the first job on main, while the database is down: nothing to sync yet, the tests spool
   their run, the summary fails (exit 1) and the job stops; the cleanup keeps the pending run
   in the cached results folder;
2. a push to main: its sync loads that run from the cache, its own run has the same known
   failure, and the gate passes (exit 0);
3. a pull request that adds a failing test: compared with main, the gate exits 2.

Only the steps that install from the network are skipped, marked in the YAML (GitHub: the step
whose ``id`` is ``install``; GitLab: ``before_script``), and the test insists they are exactly
those. Caches and artifacts are emulated: a cache copies its path from one job's folder to the
next job's, an artifact upload checks that its files are there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash"),
]

# The project's suite: two passing tests and a known bug, which main has too.
SUITE = {
    "tests/test_numbers.py": (
        "def test_parse():\n"
        '    assert int("42") == 42\n'
        "\n\n"
        "def test_format():\n"
        '    assert f"{3:03d}" == "003"\n'
    ),
    "tests/test_known_bug.py": (
        "def test_rounding():\n"
        '    assert round(2.675, 2) == 2.68, "2.675 is stored as 2.67499..."\n'
    ),
}
# What the pull request adds: a new failure, which the gate refuses.
NEW_FAILURE = {
    "tests/test_new_bug.py": (
        "def test_title():\n"
        '    assert "ci job".title() == "CI Job", "title() capitalises one letter a word"\n'
    ),
}


def _readme_block(marker: str) -> str:
    """The code block after ``<!-- marker -->`` in the README, as .ci/run reads its commands."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"<!-- {marker} -->") + 1
    assert lines[start].startswith("```"), f"no code block after <!-- {marker} -->"
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[start + 1 : end]) + "\n"


def command_of(script: str) -> str:
    """What a step is called in the expectations: ``testledger gate``, ``pytest``, ``for``."""
    words = script.split()
    return " ".join(words[:2]) if words[0] == "testledger" else words[0]


def is_network_install(script: str) -> bool:
    return re.match(r"(python3? -m )?pip install ", script.strip()) is not None


# -- one job -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """One CI job of the scenario: what triggered it and which suite it tests."""

    name: str
    branch: str
    number: int  # the run / job id
    sha: str
    database_url: str
    suite: Mapping[str, str]
    target: str | None = None  # the branch a pull / merge request goes into


@dataclass
class Ran:
    """A step: its command, exit code (None: not run, after an earlier step failed), output."""

    command: str
    code: int | None
    output: str = ""


@dataclass
class JobRun:
    folder: Path
    env: dict[str, str]
    steps: list[Ran] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)

    def codes(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for step in self.steps:
            assert step.command not in codes, f"two steps run {step.command}"
            codes[step.command] = step.code
        return codes

    def output(self, command: str) -> str:
        return next(step.output for step in self.steps if step.command == command)


def _base_env() -> dict[str, str]:
    """This process's environment without any CI's, pytest's or testledger's own variables, and
    without a terminal's width (a CI job has none)."""
    prefixes = ("GITHUB_", "GITLAB_", "CI_", "RUNNER_", "PYTEST_", "TESTLEDGER_")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CI", "COLUMNS", "LINES") and not key.startswith(prefixes)
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_shell(folder: Path, env: Mapping[str, str], script: str) -> Ran:
    """``script`` as the runners run a step (GitHub: ``bash --noprofile --norc -eo pipefail``)."""
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=folder,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Ran(command_of(script), done.returncode, done.stdout + done.stderr)


def _copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    if source.exists():
        shutil.copytree(source, target)


def _write_project(folder: Path, suite: Mapping[str, str]) -> None:
    """A fresh checkout: the gate's rules as the README gives them, and the suite."""
    folder.mkdir()
    (folder / "pyproject.toml").write_text(_readme_block("ci-gate-config"), encoding="utf-8")
    for name, text in suite.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# -- GitHub Actions ------------------------------------------------------------------------------

_EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
# Actions are not shell steps: the test stands in for each.
GITHUB_ACTIONS = {
    "actions/checkout@v4": "the job's folder, with the suite written into it",
    "actions/setup-python@v5": "this virtualenv, first on PATH",
    "actions/cache/restore@v4": "the cached path copied in from the previous job",
    "actions/cache/save@v4": "the path kept for the next job",
    "actions/upload-artifact@v4": "the path must exist",
}


def github_job() -> dict[str, Any]:
    workflow = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    job["env"] = {**workflow.get("env", {}), **job.get("env", {})}
    return dict(job)


def github_env(spec: JobSpec, folder: Path) -> dict[str, str]:
    pull_request = spec.target is not None
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request" if pull_request else "push",
        "GITHUB_REF_NAME": f"{spec.number}/merge" if pull_request else spec.branch,
        # Set on every event, empty unless it is a pull request.
        "GITHUB_HEAD_REF": spec.branch if pull_request else "",
        "GITHUB_BASE_REF": spec.target or "",
        "GITHUB_SHA": spec.sha,
        "GITHUB_RUN_ID": str(spec.number),
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_REPOSITORY": "team/app",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_WORKSPACE": str(folder),
        "GITHUB_STEP_SUMMARY": str(folder.parent / f"{folder.name}-step-summary.md"),
    }


def _github_expand(value: Any, contexts: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) not in contexts:
            pytest.fail(f"the test has no value for ${{{{ {match.group(1)} }}}}")
        return contexts[match.group(1)]

    return _EXPRESSION.sub(one, str(value))


def run_github(spec: JobSpec, folder: Path, cache: Path) -> JobRun:
    _write_project(folder, spec.suite)
    job = github_job()
    env = {**_base_env(), **github_env(spec, folder)}
    Path(env["GITHUB_STEP_SUMMARY"]).touch()
    contexts = {
        "secrets.TESTLEDGER_DATABASE_URL": spec.database_url,
        "github.run_id": env["GITHUB_RUN_ID"],
        "github.run_attempt": env["GITHUB_RUN_ATTEMPT"],
    }
    env.update({key: _github_expand(value, contexts) for key, value in job["env"].items()})
    run = JobRun(folder, env)
    failed = False
    for step in job["steps"]:
        if step.get("id") == "install":
            continue
        condition = step.get("if")
        assert condition in (None, "always()"), f"the test cannot evaluate if: {condition}"
        if failed and condition is None:
            if "run" in step:
                run.steps.append(Ran(command_of(step["run"]), None))
            continue
        if "run" in step:
            step_env = {key: _github_expand(v, contexts) for key, v in step.get("env", {}).items()}
            ran = run_shell(folder, {**env, **step_env}, step["run"])
            run.steps.append(ran)
            failed = failed or ran.code != 0
            continue
        options = {
            key: _github_expand(value, contexts) for key, value in step.get("with", {}).items()
        }
        action = step["uses"]
        if action.startswith("actions/cache/restore@"):
            _copy_tree(cache / options["path"], folder / options["path"])
        elif action.startswith("actions/cache/save@"):
            _copy_tree(folder / options["path"], cache / options["path"])
        elif action.startswith("actions/upload-artifact@"):
            for path in options["path"].split():
                if (folder / path).exists():
                    run.uploaded.append(path)
                else:
                    assert options.get("if-no-files-found") == "ignore", f"{path} is missing"
        elif action not in GITHUB_ACTIONS:  # checkout and setup-python: done already
            pytest.fail(f"the test has no stand-in for {action}")
    return run


def github_outputs(run: JobRun) -> dict[str, str]:
    """What the job left for people: its job summary, and the report it uploaded."""
    return {
        "summary": Path(run.env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8"),
        "report": "testledger-report.html",
    }


# -- GitLab CI -----------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def gitlab_job() -> dict[str, Any]:
    config = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    jobs = [
        body
        for name, body in config.items()
        if isinstance(body, dict) and "script" in body and not name.startswith(".")
    ]
    (job,) = jobs
    job["variables"] = {**config.get("variables", {}), **job.get("variables", {})}
    return dict(job)


def gitlab_env(spec: JobSpec, folder: Path) -> dict[str, str]:
    merge_request = spec.target is not None
    env = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "merge_request_event" if merge_request else "push",
        "CI_COMMIT_REF_NAME": spec.branch,
        "CI_COMMIT_SHA": spec.sha,
        "CI_DEFAULT_BRANCH": "main",
        "CI_JOB_ID": str(spec.number),
        "CI_PIPELINE_ID": str(spec.number + 1000),
        "CI_JOB_URL": f"https://gitlab.example/team/app/-/jobs/{spec.number}",
        "CI_PROJECT_DIR": str(folder),
        # A CI/CD variable of the project, not in the file.
        "TESTLEDGER_DATABASE_URL": spec.database_url,
    }
    if merge_request:
        env["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] = spec.branch
        env["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = spec.target or ""
    else:
        env["CI_COMMIT_BRANCH"] = spec.branch
    return env


def _gitlab_expand(value: Any, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            pytest.fail(f"the test has no value for ${name}")
        return env[name]

    return _VARIABLE.sub(one, str(value))


def run_gitlab(spec: JobSpec, folder: Path, cache: Path) -> JobRun:
    _write_project(folder, spec.suite)
    job = gitlab_job()
    env = {**_base_env(), **gitlab_env(spec, folder)}
    for key, value in job["variables"].items():
        env[key] = _gitlab_expand(value, env)
    run = JobRun(folder, env)
    cached = [str(path).rstrip("/") for path in job["cache"]["paths"]]
    for path in cached:  # GitLab restores the cache before the job's scripts
        _copy_tree(cache / path, folder / path)
    failed = False
    for line in job["script"]:  # one shell in GitLab: no line may rely on an earlier's variables
        if failed:
            run.steps.append(Ran(command_of(line), None))
            continue
        ran = run_shell(folder, env, line)
        run.steps.append(ran)
        failed = ran.code != 0
    for line in job.get("after_script", []):  # runs whatever the script did
        run.steps.append(run_shell(folder, env, line))
    if not failed or job["cache"].get("when") == "always":
        for path in cached:
            _copy_tree(folder / path, cache / path)
    artifacts = job["artifacts"]
    if not failed or artifacts.get("when") == "always":
        paths = [*artifacts["paths"], *artifacts.get("reports", {}).values()]
        run.uploaded = [path for path in paths if (folder / path).exists()]
    return run


def gitlab_outputs(run: JobRun) -> dict[str, str]:
    summary = run.folder / "testledger-summary.md"
    return {
        "summary": summary.read_text(encoding="utf-8") if summary.exists() else "",
        "report": "testledger-report.html",
    }


# -- the workflows' shape ------------------------------------------------------------------------


def test_only_network_installs_are_skipped_in_the_github_workflow() -> None:
    steps = github_job()["steps"]
    actions = {step["uses"] for step in steps if "uses" in step}
    assert actions == set(GITHUB_ACTIONS)
    skipped = [step["run"] for step in steps if step.get("id") == "install"]
    assert skipped and all(is_network_install(script) for script in skipped)
    run = [step["run"] for step in steps if "run" in step and step.get("id") != "install"]
    assert not any("pip install" in script for script in run)
    # Expressions stay out of scripts (values reach them through env, safe from injection).
    assert not any("${{" in script for script in run)


def test_only_network_installs_are_skipped_in_the_gitlab_job() -> None:
    job = gitlab_job()
    assert job["before_script"] and all(is_network_install(s) for s in job["before_script"])
    assert not any("pip install" in line for line in [*job["script"], *job["after_script"]])


def test_the_readme_shows_the_github_workflow_as_it_is() -> None:
    assert _readme_block("ci-github-actions") == GITHUB.read_text(encoding="utf-8")


def test_the_cleanup_keeps_only_runs_the_database_does_not_hold(tmp_path: Path) -> None:
    """The step before the cache is saved, on a pending run and synced ones (run.json as the
    results folder writes it, and compact)."""
    cleanups = [
        next(s["run"] for s in github_job()["steps"] if s.get("if") == "always()" and "run" in s),
        *gitlab_job()["after_script"],
    ]
    for number, script in enumerate(cleanups):
        results = tmp_path / str(number) / "results"
        for key, state, indent in [
            ("kept", "pending", 2),
            ("gone", "synced", 2),
            ("x", "synced", None),
        ]:
            (results / "runs" / key).mkdir(parents=True)
            (results / "runs" / key / "run.json").write_text(
                json.dumps({"run_key": key, "database": {"state": state}}, indent=indent)
            )
        env = {**_base_env(), "TESTLEDGER_RESULTS_DIR": "results"}
        assert run_shell(results.parent, env, script).code == 0
        assert [p.name for p in (results / "runs").iterdir()] == ["kept"]
        # An empty results folder (nothing recorded yet) is no error either.
        shutil.rmtree(results / "runs")
        assert run_shell(results.parent, env, script).code == 0


# -- the workflows, run ---------------------------------------------------------------------------


def _unreachable_url() -> str:
    """A PostgreSQL URL nothing answers at: a port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://testledger@127.0.0.1:{port}/gone"


def _runs(url: str) -> list[tuple[str, str, str, str, int, str]]:
    """The ledger's runs: key, branch, commit, status, failed tests, CI provider."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT run_key, branch_name, commit_hash, status, tests_failed, ci_provider"
                    " FROM test_runs ORDER BY id"
                )
            )
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def _pending_runs(results: Path) -> list[str]:
    runs = sorted((results / "runs").glob("*/run.json"))
    return [json.loads(path.read_text())["run_key"] for path in runs]


Runner = Callable[[JobSpec, Path, Path], JobRun]
Outputs = Callable[[JobRun], dict[str, str]]


# Each workflow runs once, each on one of the two databases: the workflows run the same
# commands, whose behaviour on both databases the rest of the suite tests; what is tested here
# is each file's steps, their order and their exit codes. (All four pairs took a minute of the
# suite's five.)
@pytest.mark.parametrize(
    ("runner", "outputs", "db_url"),
    [
        pytest.param(
            run_github,
            github_outputs,
            "postgresql",
            id="github-actions-postgresql",
            marks=pytest.mark.postgres,
        ),
        pytest.param(run_gitlab, gitlab_outputs, "sqlite", id="gitlab-ci-sqlite"),
    ],
    indirect=["db_url"],
)
def test_the_workflow_records_syncs_summarises_reports_and_gates(
    runner: Runner, outputs: Outputs, db_url: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()

    # 1. The first job, while the database is down: nothing to sync yet, the tests' run goes to
    # the results folder, the summary cannot be written (exit 1) and the job stops. The cleanup
    # keeps the pending run for the next job.
    outage = runner(
        JobSpec("outage", "main", 100, "c0" * 20, _unreachable_url(), SUITE),
        tmp_path / "outage",
        cache,
    )
    results = outage.env["TESTLEDGER_RESULTS_DIR"]
    outage_key = outage.env["TESTLEDGER_RUN_KEY"]
    codes = outage.codes()
    assert codes.pop("testledger sync") == 0, outage.output("testledger sync")
    assert codes.pop("pytest") == 0, outage.output("pytest")
    assert "unreachable" in outage.output("pytest")
    assert codes.pop("testledger summary") == 1, outage.output("testledger summary")
    assert codes.pop("testledger report") is None and codes.pop("testledger gate") is None
    assert set(codes.values()) == {0}, outage.steps  # the cleanup
    assert outage.uploaded in ([], ["junit.xml"])
    assert _pending_runs(cache / results) == [outage_key]
    assert _runs(db_url) == []

    # 2. A push to main: the spooled run is loaded, and is the baseline of the job's own run,
    # which fails as it did (no new failure: the gate passes).
    push = runner(JobSpec("push", "main", 101, "c1" * 20, db_url, SUITE), tmp_path / "push", cache)
    push_key = push.env["TESTLEDGER_RUN_KEY"]
    assert set(push.codes().values()) == {0}, "\n".join(s.output for s in push.steps)
    assert f"synced {outage_key} " in push.output("testledger sync")
    provider = "github-actions" if "GITHUB_ACTIONS" in push.env else "gitlab-ci"
    assert _runs(db_url) == [
        (outage_key, "main", "c0" * 20, "finished", 1, provider),
        (push_key, "main", "c1" * 20, "finished", 1, provider),
    ]
    made = outputs(push)
    assert made["summary"].startswith("### ") and "Still failing (1)" in made["summary"]
    assert f"Compared with run `{outage_key}`" in made["summary"]
    assert "test_rounding" in made["summary"] and "New failures" not in made["summary"]
    assert "PASS max-new-failures" in push.output("testledger gate")
    assert made["report"] in push.uploaded
    assert "<html" in (push.folder / made["report"]).read_text(encoding="utf-8")
    assert _pending_runs(cache / results) == []  # both are in the database now

    # 3. A pull request into main adds a failing test: compared with main's latest run, one
    # new failure, and the gate says no (exit 2). The report and summary are still there.
    pull = runner(
        JobSpec("pull", "feature", 102, "c2" * 20, db_url, {**SUITE, **NEW_FAILURE}, "main"),
        tmp_path / "pull",
        cache,
    )
    codes = pull.codes()
    assert codes.pop("testledger gate") == 2, pull.output("testledger gate")
    assert set(codes.values()) == {0}, "\n".join(s.output for s in pull.steps)
    assert "FAIL max-new-failures" in pull.output("testledger gate")
    assert "test_title" in pull.output("testledger gate")
    made = outputs(pull)
    assert f"Compared with run `{push_key}`" in made["summary"]
    assert "branch `main`" in made["summary"] and "New failures (1)" in made["summary"]
    assert "test_title" in made["summary"]
    assert made["report"] in pull.uploaded
    assert (pull.folder / made["report"]).stat().st_size > 1000
    pull_key = pull.env["TESTLEDGER_RUN_KEY"]
    assert _runs(db_url)[-1][:5] == (pull_key, "feature", "c2" * 20, "finished", 2)
    assert _pending_runs(cache / results) == []
