"""Retention on both sides of dual storage: a pruned run leaves the database
(:mod:`testledger.store.retention`) and its folder leaves the results folder, so that no
``testledger sync --all`` can bring it back.

Also the policy of ``[tool.testledger.retention]``, applied after each finished run: a problem
there (a bad table, the database going away) is a warning, never an error for the test runner,
and a ledger without the table pays nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from testledger.config import RetentionPolicy, Settings, retention_policy
from testledger.record.archive import folder_name
from testledger.store.database import database_errors, skipped_work_level
from testledger.store.retention import PruneProgress, PruneTotals, prune_database

__all__ = ["count_run_files", "prune_after_run", "prune_ledger", "remove_run_files"]

log = logging.getLogger("testledger")


def _run_folders(results_dir: Path, run_keys: Sequence[str]) -> list[Path]:
    runs = results_dir / "runs"
    return [runs / folder_name(key) for key in run_keys]


def _files_in(folder: Path) -> int:
    try:
        return sum(1 for path in folder.rglob("*") if not path.is_dir())
    except OSError:
        return 0


def count_run_files(results_dir: Path, run_keys: Sequence[str]) -> int:
    """How many files the runs' folders hold (what :func:`remove_run_files` would remove)."""
    return sum(_files_in(folder) for folder in _run_folders(results_dir, run_keys))


def _latest_run_key(results_dir: Path) -> str | None:
    try:
        data = json.loads((results_dir / "latest" / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    key = data.get("run_key") if isinstance(data, dict) else None
    return key if isinstance(key, str) else None


def remove_run_files(results_dir: Path, run_keys: Sequence[str]) -> int:
    """Remove the runs' folders (``runs/<run key>/``), and ``latest/`` when it copies one of
    them; how many files went (a run's own folder counted, not its copy). A folder that
    cannot be removed is warned about and left (its run is gone from the database already:
    ``sync --all`` would load it again, nothing else reads it)."""
    removed = 0
    if _latest_run_key(results_dir) in set(run_keys):
        try:
            shutil.rmtree(results_dir / "latest")
        except OSError as exc:
            log.warning("testledger: cannot remove %s: %s", results_dir / "latest", exc)
    for folder in _run_folders(results_dir, run_keys):
        if not folder.is_dir():
            continue
        files = _files_in(folder)
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("testledger: cannot remove %s: %s", folder, exc.strerror or exc)
            continue
        removed += files
    return removed


def prune_ledger(
    engine: Engine,
    results_dir: Path,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[PruneProgress], None] | None = None,
) -> PruneTotals:
    """Prune the database by ``policy`` and remove (dry: count) the removed runs' files."""

    def on_removed(run_keys: Sequence[str]) -> int:
        if dry_run:
            return count_run_files(results_dir, run_keys)
        return remove_run_files(results_dir, run_keys)

    return prune_database(
        engine, policy, dry_run=dry_run, now=now, on_removed=on_removed, progress=progress
    )


def prune_after_run(engine: Engine, settings: Settings) -> PruneTotals | None:
    """Apply ``[tool.testledger.retention]`` after a finished run (None without a policy, or
    when it failed: warned, never raised)."""
    try:
        policy = retention_policy(settings)
        if policy is None:
            return None
        totals = prune_ledger(engine, settings.results_dir, policy)
    except database_errors() as exc:  # a ConfigError too: every TestledgerError
        log.log(skipped_work_level(exc), "testledger: retention skipped: %s", exc)
        return None
    if totals.skipped_runs:
        log.warning(
            "testledger: retention left %d run(s) for next time: their rows stayed locked",
            len(totals.skipped_runs),
        )
    return totals
