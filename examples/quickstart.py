"""Record a small run of an LLM tool suite through the runner API, as a custom runner would.

    python examples/quickstart.py            # into .testledger/ledger.db (SQLite)
    python examples/quickstart.py --db URL   # or any ledger database

Then look at it with ``testledger runs`` and ``testledger show``.
"""

from __future__ import annotations

import argparse
import random
import time

import testledger

TOOLS = [
    ("chat", "basic_glm", "glm", "glm-4.5-air"),
    ("chat", "basic_kimi", "kimi", "kimi-k2-0905-preview"),
    ("thinkdeep", "basic_glm", "glm", "glm-4.5-air"),
    ("consensus", "basic_kimi", "kimi", "kimi-k2-0905-preview"),
    ("status", "basic_functionality", None, None),
]


def run_tool(tool: str, variation: str) -> tuple[str, str | None]:
    """Stand-in for calling the tool under test."""
    time.sleep(0.01)
    if tool == "consensus":
        return "FAIL", "consensus_failed: providers disagreed after 3 rounds"
    return "PASS", None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="ledger database URL (default: .testledger/ledger.db)")
    args = parser.parse_args()
    rng = random.Random(7)
    with testledger.open_ledger(args.db) as ledger:
        with ledger.start_run(suite="tool-validation", watcher_model="glm-4.5-air") as run:
            for tool, variation, provider, model in TOOLS:
                started = time.perf_counter()
                status, error = run_tool(tool, variation)
                tokens = rng.randint(400, 2000) if provider else None
                ref = run.record(
                    tool_name=tool,
                    variation=variation,
                    status=status,
                    provider=provider,
                    model=model,
                    execution_status="success" if status == "PASS" else "consensus_failed",
                    duration_secs=time.perf_counter() - started,
                    tokens_total=tokens,
                    cost_usd=round(tokens * 2e-6, 6) if tokens else None,
                    error_message=error,
                )
                if provider:
                    run.attach_watcher(
                        ref,
                        testledger.WatcherObservation(
                            quality_score=8 if status == "PASS" else 4,
                            strengths=["answered the prompt"] if status == "PASS" else [],
                            anomalies=[] if status == "PASS" else [error or "failed"],
                            recommendations=[] if status == "PASS" else ["retry with a tie-break"],
                            confidence=0.85,
                            watcher="glm-4.5-air",
                        ),
                    )
    where = f"run {run.run_id}" if run.run_id else f"the spool ({run.archive.folder})"
    print(f"recorded {run.stats.total_tests if run.stats else 0} results into {where}")


if __name__ == "__main__":
    main()
