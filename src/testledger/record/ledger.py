"""The ledger handle: a database URL plus the results folder for the runs' JSON files.

Kept apart from the runner (:mod:`testledger.record.runner`), which records runs: a report that
only reads (``testledger runs``, the web app's pages) opens a Ledger and never needs the
runner's JSON spool, batch writers and bulk inserts, nor their imports. Importing this module
imports neither SQLAlchemy nor the runner; :meth:`Ledger.engine` loads the database layers,
:meth:`Ledger.start_run` the runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testledger.common.urls import is_http_url
from testledger.config import Settings, load_settings
from testledger.errors import ConfigError
from testledger.model import NO_WATCHER, RunInfo, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from testledger.common.environment import GitInfo
    from testledger.record.runner import Run

__all__ = ["Ledger", "open_ledger"]


class Ledger:
    """A handle on a ledger: a database URL plus the results folder for the JSON files.

    Opening one never connects; the database is reached when a run starts (or a report asks),
    so a ledger whose database is away can still record into its JSON files.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        results_dir: str | Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or load_settings(url, results_dir)
        self._engine: Engine | None = None

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        from testledger.store.engine import mask_url

        return mask_url(self.settings.database_url)

    @property
    def results_dir(self) -> Path:
        return self.settings.results_dir

    def engine(self, *, create: bool = True) -> Engine:
        """The connected engine, its schema created on first use of an empty database. With
        ``create`` False (for reading) nothing is created: a ledger that does not exist yet is
        NotFound. Raises DatabaseUnavailable or SchemaError."""
        if self._engine is None:
            if is_http_url(self.settings.database_url):
                raise ConfigError(
                    f"{self.url} is a testledger server: runs are recorded through it (pytest "
                    "--ledger, the runner API); reports and `testledger sync` need the "
                    "database's own URL (--db), or read the server's pages"
                )
            from testledger.store.database import connect_engine

            self._engine = connect_engine(
                self.settings.database_url,
                create=create,
                statement_timeout_secs=self.settings.statement_timeout_secs,
            )
        return self._engine

    def start_run(
        self,
        *,
        branch: str | None = None,
        commit: str | None = None,
        suite: str | None = None,
        watcher_model: str = NO_WATCHER,
        notes: str | None = None,
        metadata: dict[str, Any] | None = None,
        run_key: str | None = None,
        started_at: datetime | None = None,
        source: str = "runner",
        detect_environment: bool = True,
        detect_issues: bool = True,
        batch_size: int | None = None,
        watcher: str | None = None,
        offline: str | None = None,
        expected_tests: int | None = None,
    ) -> Run:
        """Start recording a run. ``run_key`` makes it idempotent: a run started again under the
        same key is the same run (results it already holds are not written twice). Branch and
        commit default to what git and the CI environment say. Issue detection runs when the
        run finishes, unless ``detect_issues`` is False (``testledger detect`` can run it).
        ``offline`` records into the JSON files alone, for that reason, without connecting (the
        pytest plugin's spool when its writer process died). ``expected_tests``: how many tests
        the run will hold, when known (a live run's progress). A ledger whose URL is http(s)://
        records through that server's ingest API (see :mod:`testledger.record.http_sink`)."""
        info = RunInfo(
            branch=branch or "unknown",
            commit=commit,
            suite=suite or self.settings.suite,
            watcher_model=watcher_model,
            notes=notes,
            run_key=run_key,
            started_at=started_at or utcnow(),
            source=source,
            metadata=dict(metadata or {}),
        )
        # git and the host's name are asked while the runner and the database layers are
        # imported (a process's first run: most of its start), instead of before them.
        lookup = (
            _EnvironmentLookup(git=branch is None or commit is None) if detect_environment else None
        )
        from testledger.record.runner import Run

        if lookup is not None:
            _fill_from_environment(info, explicit_branch=branch is not None, lookup=lookup)
        run = Run(
            self,
            info,
            batch_size or self.settings.batch_size,
            detect_issues=detect_issues,
            offline=offline,
        )
        # ``watcher`` names a watcher (``testledger.watchers``) that watches the run at finish.
        run.watcher = watcher
        if expected_tests is not None:
            run.expect_tests(expected_tests)
        return run

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_ledger(url: str | None = None, *, results_dir: str | Path | None = None) -> Ledger:
    """Open a ledger: ``url`` (else ``TESTLEDGER_DATABASE_URL``, ``[tool.testledger]``, or the
    default SQLite file ``.testledger/ledger.db``)."""
    return Ledger(url, results_dir=results_dir)


class _EnvironmentLookup:
    """What git (when asked) and the host say (:mod:`testledger.common.environment`), found on
    a thread of its own: their processes (``git rev-parse``; ``uname -p`` behind the platform's
    name) run while this thread goes on."""

    def __init__(self, *, git: bool) -> None:
        # Imported here, not on the thread, which runs beside this thread's own imports.
        from testledger.common.environment import detect_git, host_metadata

        self.git: GitInfo | None = None
        self.host: dict[str, str] = {}
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._look,
            args=(detect_git if git else None, host_metadata),
            name="testledger-environment",
            daemon=True,
        )
        self._thread.start()

    def _look(
        self, detect_git: Callable[[], GitInfo] | None, host_metadata: Callable[[], dict[str, str]]
    ) -> None:
        try:
            self.git = detect_git() if detect_git is not None else None
            self.host = host_metadata()
        except BaseException as exc:  # raised where the caller waits, as if found there
            self._failure = exc

    def wait(self) -> _EnvironmentLookup:
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self


def _fill_from_environment(
    info: RunInfo, *, explicit_branch: bool, lookup: _EnvironmentLookup
) -> None:
    from testledger.common.environment import detect_ci

    ci = detect_ci()
    found = lookup.wait().git
    if not explicit_branch:
        info.branch = ci.branch or (found.branch if found else None) or "unknown"
    if info.commit is None:
        info.commit = ci.commit or (found.commit if found else None)
    info.ci_provider = info.ci_provider or ci.provider
    info.ci_job_url = info.ci_job_url or ci.job_url
    host = lookup.host
    info.host = info.host or host["host"]
    info.metadata.setdefault("environment", host)
