"""The checkout and CI's script: the demo folder is ignored by git; ``.ci/run`` checks the main
command on a copy of what git tracks (not a developer's demo folder, ledger or virtualenv), and
removes its temporary folders however it ends. The helpers are ``.ci/lib.sh``'s."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from testledger.demo.runner import DEFAULT_DIRECTORY

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / ".ci" / "lib.sh"
RUN = ROOT / ".ci" / "run"

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("bash") is None, reason="needs git and bash"
)


def _git_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    return env


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=folder, env=_git_env(), capture_output=True, text=True, check=True
    )
    return done.stdout


def bash(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash as .ci/run runs, with .ci/lib.sh sourced; ``$1``... are ``args``."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{LIB}"; {script}', "bash", *args],
        env=_git_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_demo_folder_is_ignored_by_git() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # --no-index: the pattern, whether or not something of that name is tracked.
    path = f"{DEFAULT_DIRECTORY}/ledger.db"
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, env=_git_env(), check=False
    )
    assert done.returncode == 0, f"{path} is not ignored by .gitignore"


def test_copy_tracked_copies_what_git_tracks_as_edited(tmp_path: Path) -> None:
    source, target = tmp_path / "checkout", tmp_path / "copy"
    (source / "src").mkdir(parents=True)
    target.mkdir()
    (source / "README.md").write_text("committed\n")
    (source / "src" / "module.py").write_text("x = 1\n")
    (source / "src" / "gone.py").write_text("")
    (source / "odd name's file.txt").write_text("spaces and a quote\n")
    git(source, "init", "-q")
    git(source, "add", "--all")
    git(source, "commit", "-q", "-m", "first")
    (source / "src" / "module.py").write_text("x = 2  # not committed yet\n")
    (source / "src" / "gone.py").unlink()  # deleted, not committed yet
    (source / "src" / "staged.py").write_text("y = 1\n")
    git(source, "add", "src/staged.py")
    (source / "testledger-demo").mkdir()  # what the quick start leaves in a checkout
    (source / "testledger-demo" / "ledger.db").write_bytes(b"\0" * 1024)
    (source / "notes.txt").write_text("untracked\n")
    done = bash('copy_tracked "$1" "$2"', str(source), str(target))
    assert done.returncode == 0, done.stderr
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert copied == ["README.md", "odd name's file.txt", "src/module.py", "src/staged.py"]
    assert (target / "src" / "module.py").read_text() == "x = 2  # not committed yet\n"


def test_registered_folders_are_removed_however_the_script_ends(tmp_path: Path) -> None:
    kept, removed = tmp_path / "kept", [tmp_path / "work", tmp_path / "pg dir"]
    for folder in (kept, *removed):
        (folder / "inside").mkdir(parents=True)
    done = bash(
        'trap remove_registered EXIT; remove_on_exit "$1" "$2"; false; echo not reached',
        *map(str, removed),
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert [folder.exists() for folder in (kept, *removed)] == [True, False, False]
    # Nothing registered: nothing to remove, and no error under `set -u`.
    assert bash("trap remove_registered EXIT; true").returncode == 0


def test_the_ci_script_uses_them() -> None:
    """.ci/run parses, copies with copy_tracked and registers both of its temporary folders."""
    assert subprocess.run(["bash", "-n", str(RUN)], check=False).returncode == 0
    script = RUN.read_text()
    assert 'copy_tracked "$ROOT" "$WORK"' in script
    assert "cp -r" not in script
    assert 'remove_on_exit "$WORK"' in script and 'remove_on_exit "$PGDIR"' in script
