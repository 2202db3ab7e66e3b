"""Tokens and cost from the suite's ``prompt_counter.json``, attributed to the results.

Prompt-history entries naming a tool and variation of the run are summed onto that result
(watcher prompts excluded: they are not the test's usage); the counter's totals always go to
``RunInfo.metadata["prompt_counter"]``, and what could not be attributed is said in the warnings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from testledger.ingest._common import opt_number
from testledger.ingest.tool_validation.context import ExaiContext, json_object, parse_time
from testledger.model import RunInfo, TestResult

__all__ = ["SESSION_SLACK", "attach_counter", "attribute_prompts"]

#: A prompt stamped this long before the run started belongs to an earlier session.
SESSION_SLACK = timedelta(seconds=60)


def attribute_prompts(
    results: list[TestResult], ctx: ExaiContext, run_start: datetime | None
) -> None:
    """Each prompt to the result of its tool/variation; a test run twice (a retry) gets the
    prompts stamped before the next attempt started, so none is counted twice."""
    for index, result in enumerate(results):
        key = (result.tool_name, result.variation)
        later = [r.started_at for r in results[index + 1 :] if (r.tool_name, r.variation) == key]
        until = later[0] if later else None
        picked = [
            i
            for i, p in enumerate(ctx.prompts)
            if i not in ctx.attributed
            and (p.get("tool"), p.get("variation")) == key
            and p.get("provider") != "watcher"
            and _in_session(p, run_start, until)
        ]
        if picked:
            ctx.attributed.update(picked)
            _sum_prompts(result, [ctx.prompts[i] for i in picked])


def _sum_prompts(result: TestResult, mine: list[dict[str, Any]]) -> None:
    tokens = [json_object(p.get("tokens")) for p in mine]
    result.tokens_input = int(sum(opt_number(t.get("input")) or 0 for t in tokens))
    result.tokens_output = int(sum(opt_number(t.get("output")) or 0 for t in tokens))
    result.tokens_total = int(sum(opt_number(t.get("total")) or 0 for t in tokens))
    result.cost_usd = sum(opt_number(p.get("cost_usd")) or 0.0 for p in mine)
    result.details["prompt_numbers"] = [p.get("prompt_number") for p in mine]


def _in_session(prompt: dict[str, Any], start: datetime | None, until: datetime | None) -> bool:
    stamp = parse_time(prompt.get("timestamp"))
    if stamp is None:
        return True
    return (start is None or stamp >= start - SESSION_SLACK) and (until is None or stamp < until)


def attach_counter(
    counter: dict[str, Any], ctx: ExaiContext, run: RunInfo, warnings: list[str]
) -> None:
    """Run-level totals always; a warning for whatever the history could not pin on a result."""
    keys = ("session_start", "total_prompts", "token_usage", "cost_tracking", "prompts_by_provider")
    totals = {k: counter[k] for k in keys if k in counter}
    run.metadata["prompt_counter"] = totals
    counter_start = parse_time(counter.get("session_start"))
    if counter_start and run.started_at and abs(counter_start - run.started_at) > SESSION_SLACK:
        warnings.append(f"prompt counter is of another session (started {counter_start})")
    history = ctx.prompts
    left = [p for i, p in enumerate(history) if i not in ctx.attributed]
    if not history:
        run.metadata["prompt_counter_attribution"] = "run_level_only"
        warnings.append("prompt counter has no prompt history: tokens and cost kept as run totals")
    elif left:
        partial = len(left) < len(history)
        run.metadata["prompt_counter_attribution"] = "partial" if partial else "run_level_only"
        warnings.append(
            f"{len(left)} of {len(history)} prompt-history entries match no result of this run "
            "(other tool/variation, another session or the watcher): kept in run totals only"
        )
    else:
        run.metadata["prompt_counter_attribution"] = "per_result"
