"""Benchmark: known-pattern rule evaluation, against the rule-by-rule peer.

    python bench/rules.py [--rules 50] [--results 100000] [--repeat 3]

The worst case for ``RuleSet.match``: ``--rules`` rules (a message pattern each, half of them
also a provider pattern, a third a tool pattern) tried on ``--results`` failing results that
none of them matches, so every rule is tried on every result. Prints rule evaluations/s and the
ratio against the peer measured in the same run: ``Rule.matches`` called rule after rule, which
reads every field again for every rule (what ``RuleSet``'s fetch-once plan saves). Each side is
the best of ``--repeat`` passes, alternating, so load on the machine hits both alike.
Benchmarks report; they do not gate: the goal line says MET or NOT MET and the exit status is 0
either way. The goal (5M evaluations in under 5 s) was a timed unit test before it moved here.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from testledger.analyze.issues.rules import Rule, RuleSet
from testledger.model import Status, TestResult

GOAL_EVALUATIONS_PER_SEC = 1_000_000
PROVIDERS = ("openai", "anthropic", "kimi", "gemini")


def make_rules(count: int) -> list[Rule]:
    rules = []
    for i in range(count):
        patterns = {"message": rf"timed out after {i}\d+ ?s"}
        if i % 2:
            patterns["provider"] = f"^{PROVIDERS[i % 4]}$"
        if i % 3 == 0:
            patterns["tool"] = f"^tool_{i}$"
        compiled = {key: re.compile(value) for key, value in patterns.items()}
        rules.append(Rule(name=f"r{i}", patterns=compiled))
    return rules


def make_results(count: int) -> list[TestResult]:
    """``count`` results cycling through 1,000 distinct ones (ids, tools, providers, messages)."""
    distinct = [
        TestResult(
            test_id=f"tests/test_tools.py::test_call[{n}]",
            tool_name=f"tool_{n % 97}",
            variation="basic",
            status=Status.FAIL,
            provider=PROVIDERS[n % 4] if n % 5 else None,
            model="m",
            error_type="AssertionError",
            error_message=f"AssertionError: expected {n} items, got {n + 1} in the response",
        )
        for n in range(1000)
    ]
    return [distinct[n % 1000] for n in range(count)]


def _timed_secs(run: Callable[[], int], expected: int) -> float:
    start = time.perf_counter()
    matched = run()
    elapsed = time.perf_counter() - start
    if matched != expected:
        raise SystemExit(f"{matched} results matched, expected {expected}: the workload changed")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rules = make_rules(args.rules)
    ruleset = RuleSet(tuple(rules))
    results = make_results(args.results)
    evaluations = len(rules) * len(results)
    print(f"{len(rules)} rules x {len(results):,} results (none matching) = {evaluations:,}")

    def with_ruleset() -> int:
        return sum(1 for result in results if ruleset.match(result) is not None)

    def rule_by_rule() -> int:
        return sum(1 for result in results if any(rule.matches(result) for rule in rules))

    ours: list[float] = []
    peer: list[float] = []
    for _ in range(args.repeat):
        ours.append(_timed_secs(with_ruleset, 0))
        peer.append(_timed_secs(rule_by_rule, 0))
    secs, peer_secs = min(ours), min(peer)
    rate, peer_rate = evaluations / secs, evaluations / peer_secs
    print(f"RuleSet.match:       {rate:14,.0f} evaluations/s  ({secs:.2f} s)")
    print(f"rule-by-rule peer:   {peer_rate:14,.0f} evaluations/s  ({peer_secs:.2f} s)")
    print(f"ratio RuleSet/peer: {rate / peer_rate:.2f}x")
    met = rate >= GOAL_EVALUATIONS_PER_SEC
    print(f"GOAL >= {GOAL_EVALUATIONS_PER_SEC:,} evaluations/s: {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
