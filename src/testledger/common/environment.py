"""Run metadata found in the environment: git branch and commit, CI provider and job URL, host."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CiInfo", "GitInfo", "detect_ci", "detect_git", "host_metadata"]


@dataclass(frozen=True, slots=True)
class GitInfo:
    branch: str | None
    commit: str | None


@dataclass(frozen=True, slots=True)
class CiInfo:
    provider: str | None
    job_url: str | None
    branch: str | None
    commit: str | None


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    output = completed.stdout.strip()
    return output if completed.returncode == 0 and output else None


def detect_git(cwd: Path | None = None) -> GitInfo:
    """The checked-out branch and commit; (None, None) outside a repository or without git.
    A detached HEAD (as CI checkouts often are) has no branch."""
    # One git process for both (each costs a few milliseconds on every recorded run).
    output = _git(["rev-parse", "HEAD", "--abbrev-ref", "HEAD"], cwd)
    lines = output.splitlines() if output else []
    if len(lines) != 2:
        return GitInfo(branch=None, commit=None)
    commit, branch = lines[0].strip() or None, lines[1].strip() or None
    if branch == "HEAD":
        branch = None
    return GitInfo(branch=branch, commit=commit)


def detect_ci(environ: Mapping[str, str] | None = None) -> CiInfo:
    """GitHub Actions, GitLab CI, or a generic ``CI`` variable."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
        url = f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else None
        branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME")
        return CiInfo("github-actions", url, branch or None, env.get("GITHUB_SHA"))
    if env.get("GITLAB_CI") == "true":
        branch = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_REF_NAME")
        return CiInfo("gitlab-ci", env.get("CI_JOB_URL"), branch, env.get("CI_COMMIT_SHA"))
    if env.get("CI", "").lower() in ("true", "1", "yes"):
        return CiInfo("ci", env.get("BUILD_URL") or env.get("CI_JOB_URL"), None, None)
    return CiInfo(None, None, None, None)


def host_metadata() -> dict[str, str]:
    return {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
