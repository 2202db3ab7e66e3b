"""A NUL byte anywhere a run, a result or a watcher observation carries text (issue 15, item 3).

PostgreSQL refuses NUL in text, in text arrays and in jsonb (``\\u0000``); SQLite would keep
it. Every such value is stored with the NUL replaced by U+FFFD, alike on both databases, with
the fields that held one named (a result's ``details``, a run's ``run_metadata``, an
observation's ``raw_observation``, each under ``nul_replaced``), and the run goes to the
database, never to the spool. Results had it already (tests/record/test_storage_trouble.py);
here the run's own fields, watcher observations through the runner API and an imported
watcher observations file, and an aborted run whose exception message holds a NUL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger, WatcherObservation, api
from tests.helpers import query_rows

NUL = "\x00"
SEEN = "\ufffd"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _array(value: Any) -> list[str]:
    return list(_json(value)) if value is not None else []


#: Run fields given with a NUL: (keyword of start_run, column, stored as).
RUN_FIELDS = [
    ("branch", "branch_name", f"ma{SEEN}in"),
    ("commit", "commit_hash", f"abc{SEEN}"),
    ("suite", "suite", f"{SEEN}suite"),
    ("notes", "notes", f"n{SEEN}otes"),
    ("watcher_model", "watcher_model", f"m{SEEN}"),
]


@pytest.mark.parametrize(("keyword", "column", "stored"), RUN_FIELDS)
def test_a_nul_in_a_run_field_is_replaced(
    ledger: Ledger, keyword: str, column: str, stored: str
) -> None:
    given = stored.replace(SEEN, NUL)
    with ledger.start_run(detect_environment=False, **{keyword: given}) as run:
        run.record(tool_name="t", variation="v", status="PASS")
    assert not run.spooled, run.spool_reason
    [row] = query_rows(ledger.url, f"SELECT {column}, run_metadata, status FROM test_runs")
    assert row[column] == stored
    assert _json(row["run_metadata"])["nul_replaced"] == [column]
    assert row["status"] == "finished"


def test_a_nul_in_run_metadata_keys_values_and_the_run_key(ledger: Ledger) -> None:
    metadata = {f"k{NUL}": [f"v{NUL}", 1], "plain": {"deep": f"d{NUL}"}}
    with ledger.start_run(
        branch="main", run_key=f"key{NUL}", metadata=metadata, detect_environment=False
    ) as run:
        run.record(tool_name="t", variation="v", status="PASS")
    assert not run.spooled, run.spool_reason
    [row] = query_rows(ledger.url, "SELECT run_key, run_metadata FROM test_runs")
    assert row["run_key"] == f"key{SEEN}"
    assert _json(row["run_metadata"]) == {
        f"k{SEEN}": [f"v{SEEN}", 1],
        "plain": {"deep": f"d{SEEN}"},
        "nul_replaced": ["run_key", "run_metadata"],
    }
    # The same key again is the same run (idempotent under its replaced key).
    with ledger.start_run(branch="main", run_key=f"key{NUL}", detect_environment=False) as again:
        again.record(tool_name="t", variation="v", status="PASS")
    assert again.run_id == run.run_id


def test_an_aborted_run_whose_exception_holds_a_nul(ledger: Ledger) -> None:
    with (
        pytest.raises(ValueError),
        ledger.start_run(branch="main", detect_environment=False) as run,
    ):
        run.record(tool_name="t", variation="v", status="PASS")
        raise ValueError(f"bad{NUL}value")
    assert not run.spooled, run.spool_reason
    [row] = query_rows(ledger.url, "SELECT status, notes FROM test_runs")
    assert row == {"status": "aborted", "notes": f"aborted: ValueError: bad{SEEN}value"}


def _observation() -> WatcherObservation:
    return WatcherObservation(
        quality_score=4,
        strengths=[f"s{NUL}"],
        weaknesses=["fine", f"w{NUL}"],
        anomalies=[f"{NUL}"],
        recommendations=[f"r{NUL}"],
        confidence_level=f"high{NUL}",
        watcher=f"heur{NUL}istic",
        watcher_model=f"glm{NUL}",
        raw={f"text{NUL}": f"x{NUL}y", "n": 1},
    )


INSIGHT_SQL = (
    "SELECT strengths, weaknesses, anomalies, recommendations, confidence_level, watcher, "
    "watcher_model, raw_observation FROM watcher_insights"
)


@pytest.mark.parametrize("how", ["attached", "embedded"])
def test_a_nul_in_a_watcher_observation_is_replaced(ledger: Ledger, how: str) -> None:
    with ledger.start_run(branch="main", detect_environment=False) as run:
        if how == "attached":
            ref = run.record(tool_name="t", variation="v", status="FAIL", error_message="e")
            run.attach_watcher(ref, _observation())
        else:
            run.record(
                tool_name="t",
                variation="v",
                status="FAIL",
                error_message="e",
                watcher=_observation(),
            )
    assert not run.spooled, run.spool_reason
    [row] = query_rows(ledger.url, INSIGHT_SQL)
    assert _array(row["strengths"]) == [f"s{SEEN}"]
    assert _array(row["weaknesses"]) == ["fine", f"w{SEEN}"]
    assert _array(row["anomalies"]) == [SEEN]
    assert _array(row["recommendations"]) == [f"r{SEEN}"]
    assert (row["confidence_level"], row["watcher"], row["watcher_model"]) == (
        f"high{SEEN}",
        f"heur{SEEN}istic",
        f"glm{SEEN}",
    )
    raw = _json(row["raw_observation"])
    assert raw[f"text{SEEN}"] == f"x{SEEN}y" and raw["n"] == 1
    assert raw["nul_replaced"] == [
        "strengths",
        "weaknesses",
        "anomalies",
        "recommendations",
        "confidence_level",
        "raw",
        "watcher",
        "watcher_model",
    ]
    [result] = query_rows(
        ledger.url, "SELECT watcher_quality, watcher_observations FROM test_results"
    )
    assert result["watcher_quality"] == 4
    assert NUL not in json.dumps(_json(result["watcher_observations"]), ensure_ascii=False)


def test_a_spooled_run_with_nul_everywhere_syncs(db_url: str, tmp_path: Path) -> None:
    """Recorded while the database was away, then synced: the same values as recorded live."""
    results = tmp_path / "results"
    with Ledger("postgresql://x:pw@127.0.0.1:9/none", results_dir=results) as offline:
        with offline.start_run(
            branch=f"b{NUL}", notes=f"n{NUL}", metadata={"m": NUL}, detect_environment=False
        ) as run:
            ref = run.record(tool_name="t", variation="v", status="FAIL", error_message=f"e{NUL}")
            run.attach_watcher(ref, _observation())
    assert run.spooled
    with Ledger(db_url, results_dir=results) as ledger:
        report = api.sync(ledger)
    assert report.failed == [] and len(report.synced) == 1
    [row] = query_rows(db_url, "SELECT branch_name, notes, run_metadata FROM test_runs")
    assert (row["branch_name"], row["notes"]) == (f"b{SEEN}", f"n{SEEN}")
    assert _json(row["run_metadata"])["m"] == SEEN
    [insight] = query_rows(db_url, INSIGHT_SQL)
    assert _array(insight["anomalies"]) == [SEEN]


def test_an_imported_watcher_observations_file_with_nul(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "results" / "latest" / "watcher_observations"
    folder.mkdir(parents=True)
    observation = {
        "tool": "chat",
        "variation": f"basic{NUL}glm",
        "timestamp": "2025-10-07T10:00:40.000000Z",
        "watcher_analysis": {
            "quality_score": 3,
            "anomalies": [f"an{NUL}omaly"],
            "suggestions": [f"sug{NUL}"],
            "confidence": 0.5,
            "observations": f"saw{NUL}this",
        },
    }
    (folder / "chat_basic_glm.json").write_text(json.dumps(observation))
    with Ledger(db_url, results_dir=tmp_path / "spool") as ledger:
        report = api.import_paths(ledger, [folder])
    assert report.errors == [], report.errors
    assert [p.reconstructed + p.attached for p in report.placed] == [1]
    [insight] = query_rows(db_url, INSIGHT_SQL)
    assert _array(insight["anomalies"]) == [f"an{SEEN}omaly"]
    assert _array(insight["recommendations"]) == [f"sug{SEEN}"]
    assert NUL not in json.dumps(_json(insight["raw_observation"]), ensure_ascii=False)
    [result] = query_rows(db_url, "SELECT test_id, variation FROM test_results")
    assert result["variation"] == f"basic{SEEN}glm" and SEEN in result["test_id"]


def test_an_import_renumbering_far_repeats_of_a_test_id_with_a_nul(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test repeated further apart than the importer remembers is renumbered by looking up
    what the run holds, by the test id as stored."""
    from testledger.ingest import importer

    monkeypatch.setattr(importer, "_RECENT_TESTS", 1)
    tests = [
        {"name": name, "status": status, "duration": 1, "message": f"m{NUL}"}
        for name, status in [(f"a{NUL}", "failed"), ("b", "passed"), (f"a{NUL}", "passed")]
    ]
    report = {
        "results": {
            "tool": {"name": "playwright"},
            "summary": {"tests": 3, "passed": 2, "failed": 1, "start": 1, "stop": 2},
            "tests": tests,
        }
    }
    path = tmp_path / "ctrf.json"
    path.write_text(json.dumps(report))
    with Ledger(db_url, results_dir=tmp_path / "spool") as ledger:
        outcome = api.import_paths(ledger, [path])
    assert outcome.errors == [], outcome.errors
    rows = query_rows(db_url, "SELECT test_id, attempt, status FROM test_results ORDER BY id")
    assert [(r["test_id"].endswith(f"a{SEEN}"), r["attempt"], r["status"]) for r in rows] == [
        (True, 1, "FAIL"),
        (False, 1, "PASS"),
        (True, 2, "PASS"),
    ]
