"""Score testledger's detection on a labelled history (``generate.py``), against the goals.

Reads the ledger only through ``testledger.api`` (after ``api.detect(all_runs=True)``, which
``bench/detection.py`` runs) and the labels file. What is measured:

* **Grouping** (goals >= 0.95): every labelled failing result (one attempt of one test in one
  run) has a cause; detection put it into an issue. Scores are B-cubed, macro-averaged over
  causes so that each cause weighs the same whatever its size: for a failure f,
  precision(f) = |issue(f) & cause(f)| / |issue(f)| and recall(f) = |issue(f) & cause(f)| /
  |cause(f)|; a cause's precision (recall) is the mean over its failures, and the figure is the
  mean over causes. Recall 1.0: every cause is one issue; precision 1.0: no issue mixes causes.
  Also printed: issues per cause (the issues holding its failures), and each must-split pair
  (``causes.PAIRS``) kept apart or not.
* **Flaky** (F1 >= 0.9; no outage-hit test and no lookalike flagged): ``api.find_flaky``'s
  tests against the labelled flaky tests.
* **Change points** (F1 >= 0.9 with and without ``include_improvements``; located within 3 runs;
  false alarms <= 0.5% of tests): ``api.find_regressions`` on main's ``duration_secs``. A
  planted change (test, position in main's runs, direction) is found by a reported change of the
  same test and direction whose first run is within 3 runs of it ("within 10" is also counted,
  to tell a late change from a missed one). "With improvements" asks for them; "without" is the
  default call (improvements must be reported by default to score). A false alarm is a reported
  change on a test with no planted change; the rate is per test of the history.
* **Lifecycle**: the issue holding most of a cause's failures (its main issue) ends RESOLVED for
  fixed causes and outages, OPEN for regressed and ongoing ones.
* **Branches**: a cause seen only on a PR branch is that branch's issue (``branch_name``), a
  cause that came to main from a PR is main's (no branch), and the stale PR branch's failures of
  fixed causes leave their issues RESOLVED.

Run: ``python bench/history/score.py sqlite:///PATH/ledger.db [--labels PATH]``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testledger import api

__all__ = ["Metric", "Scores", "score"]


@dataclass
class Metric:
    name: str
    value: float | str
    goal: str
    met: bool
    detail: str = ""

    def line(self) -> str:
        value = f"{self.value:.3f}" if isinstance(self.value, float) else str(self.value)
        verdict = "MET" if self.met else "NOT MET"
        text = f"  {self.name:<44} {value:>10}   goal {self.goal:<14} {verdict}"
        return text + (f"\n      {self.detail}" if self.detail else "")


@dataclass
class Scores:
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float | str, goal: str, met: bool, detail: str = "") -> None:
        self.metrics.append(Metric(name, value, goal, met, detail))

    def render(self) -> str:
        lines = [m.line() for m in self.metrics]
        met = sum(m.met for m in self.metrics)
        lines.append(f"  {met}/{len(self.metrics)} goals met")
        return "\n".join(lines + [f"  - {note}" for note in self.notes])


def _f1(found: int, expected: int, correct: int) -> tuple[float, float, float]:
    precision = correct / found if found else 1.0
    recall = correct / expected if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _issue_of_failures(
    ledger: api.Ledger,
) -> tuple[dict[tuple[int, str, int], str], dict[str, Any]]:
    """(run id, test id, attempt) -> issue code, and the issues by code."""
    where: dict[tuple[int, str, int], str] = {}
    issues = {i.code: i for i in api.list_issues(ledger)}
    for code in issues:
        detail = api.issue_detail(ledger, code, occurrences=10_000_000)
        for occ in detail.occurrences:
            if occ.test_id is not None and occ.attempt is not None:
                where[(occ.run_id, occ.test_id, occ.attempt)] = code
    return where, issues


def _grouping(scores: Scores, labels: dict[str, Any], where: dict[Any, str]) -> dict[str, str]:
    """Scores the grouping; returns each cause's main issue."""
    cause_of: dict[tuple[int, str, int], str] = {
        (run_id, test_id, attempt): cause for run_id, test_id, attempt, cause in labels["failures"]
    }
    issue_members: dict[str, Counter[str]] = defaultdict(Counter)
    cause_issues: dict[str, Counter[str]] = defaultdict(Counter)
    missing = 0
    for key, cause in cause_of.items():
        code = where.get(key)
        if code is None:
            missing += 1
            code = f"<none:{key}>"  # a failure in no issue is its own (wrong) group
        issue_members[code][cause] += 1
        cause_issues[cause][code] += 1
    precisions, recalls = [], []
    for by_issue in cause_issues.values():
        size = sum(by_issue.values())
        p = sum(n * n / sum(issue_members[code].values()) for code, n in by_issue.items()) / size
        r = sum(n * n / size for n in by_issue.values()) / size
        precisions.append(p)
        recalls.append(r)
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    split = {c: len(i) for c, i in cause_issues.items() if len(i) > 1}
    mixed = {code: dict(m) for code, m in issue_members.items() if len(m) > 1}
    scores.add(
        "grouping precision (B-cubed, per cause)",
        precision,
        ">= 0.95",
        precision >= 0.95,
        f"issues mixing causes: {mixed or 'none'}",
    )
    scores.add(
        "grouping recall (B-cubed, per cause)",
        recall,
        ">= 0.95",
        recall >= 0.95,
        f"causes split over several issues: {split or 'none'}",
    )
    main_issue = {cause: by_issue.most_common(1)[0][0] for cause, by_issue in cause_issues.items()}
    merged = [
        f"{a}+{b}"
        for a, b, _ in labels["pairs"]
        if a in main_issue and main_issue[a] == main_issue.get(b)
    ]
    scores.add(
        "must-split pairs kept apart",
        f"{len(labels['pairs']) - len(merged)}/{len(labels['pairs'])}",
        "all",
        not merged,
        f"merged: {merged}" if merged else "",
    )
    holding = {code for code in issue_members if not code.startswith("<none:")}
    scores.notes.append(
        f"{len(cause_issues)} causes in {len(holding)} issues; "
        f"{missing} labelled failures in no issue"
    )
    return main_issue


def _flaky(scores: Scores, labels: dict[str, Any], ledger: api.Ledger) -> None:
    found = {t.test_id for t in api.find_flaky(ledger)}
    expected = set(labels["flaky_tests"])
    precision, recall, f1 = _f1(len(found), len(expected), len(found & expected))
    rates = labels["flaky_rates"]
    missed = sorted(f"{t.split('::')[-1]} ({rates[t]:.0%})" for t in expected - found)
    scores.add(
        "flaky F1",
        f1,
        ">= 0.9",
        f1 >= 0.9,
        f"precision {precision:.2f}, recall {recall:.2f}; missed {missed}; "
        f"wrongly flagged {sorted(found - expected)}",
    )
    bad = found & (set(labels["outage_hit_tests"]) - expected)
    scores.add("outage-hit tests flagged flaky", len(bad), "0", not bad)
    looks = {t for tests in labels["lookalikes"].values() for t in tests}
    scores.add(
        "lookalikes flagged flaky",
        len(found & looks),
        "0",
        not found & looks,
        str(sorted(found & looks)) if found & looks else "",
    )


def _changes(ledger: api.Ledger, include: bool) -> list[Any]:
    """With improvements asked for; without: the default call, as a user makes it."""
    if include:
        report = api.find_regressions(
            ledger, branch="main", metric="duration", include_improvements=True
        )
    else:
        report = api.find_regressions(ledger, branch="main", metric="duration")
    return list(report.changes)


def _change_points(scores: Scores, labels: dict[str, Any], ledger: api.Ledger) -> None:
    position = {run["id"]: run["position"] for run in labels["runs"]}
    planted = [
        (test, at, kind)
        for test, points in labels["change_points"].items()
        for at, kind, _ in points
    ]
    for include in (True, False):
        found = [
            (c.test_id, position.get(c.first_run.id), c.kind) for c in _changes(ledger, include)
        ]
        hit3, hit10, late = 0, 0, []
        used: set[int] = set()
        for test, at, kind in planted:
            near = [
                (abs(p - at), i)
                for i, (t, p, k) in enumerate(found)
                if t == test and k == kind and p is not None and i not in used and abs(p - at) <= 10
            ]
            if near:
                distance, index = min(near)
                used.add(index)
                hit10 += 1
                if distance <= 3:
                    hit3 += 1
                else:
                    late.append(f"{test.split('::')[-1]}@{at} off by {distance}")
        _, _, f1 = _f1(len(found), len(planted), hit3)
        label = "with" if include else "by default, without asking for"
        unfound = len(planted) - hit10
        scores.add(
            f"change-point F1 {label} improvements",
            f1,
            ">= 0.9",
            f1 >= 0.9,
            f"{len(found)} reported, {len(planted)} planted, {hit3} within 3 runs, "
            f"{unfound} not found",
        )
        if include:
            located = hit3 / hit10 if hit10 else 0.0
            scores.add(
                "change points located within 3 runs",
                located,
                "1.0 (of found)",
                located >= 1.0,
                f"late: {late}" if late else "",
            )
            planted_tests = set(labels["change_points"])
            alarms = [f for f in found if f[0] not in planted_tests]
            rate = len({f[0] for f in alarms}) / labels["tests"]
            scores.add(
                "false alarms (tests, % of tests)",
                f"{rate:.2%}",
                "<= 0.5%",
                rate <= 0.005,
                f"{len(alarms)} changes on {len({a[0] for a in alarms})} tests"
                + (f", e.g. {alarms[:3]}" if alarms else ""),
            )


def _lifecycle(
    scores: Scores, labels: dict[str, Any], main_issue: dict[str, str], issues: dict[str, Any]
) -> None:
    groups = {"fixed": ("fixed", "outage"), "regressed": ("regressed",), "ongoing": ("ongoing",)}
    for name, kinds in groups.items():
        causes = [c for c, v in labels["causes"].items() if v["kind"] in kinds]
        wrong = []
        for cause in causes:
            code = main_issue.get(cause)
            expected = labels["causes"][cause]["expected_status"]
            got = issues[code].status if code in issues else None
            if got != expected:
                wrong.append(f"{cause}: {got} (want {expected})")
        right = len(causes) - len(wrong)
        scores.add(
            f"lifecycle: {name} causes",
            f"{right}/{len(causes)}",
            "all",
            not wrong,
            "; ".join(wrong),
        )


def _branches(
    scores: Scores, labels: dict[str, Any], main_issue: dict[str, str], issues: dict[str, Any]
) -> None:
    wrong = []
    checked = 0
    for cause, info in labels["causes"].items():
        if info["kind"] not in ("branch", "merged"):
            continue
        checked += 1
        issue = issues.get(main_issue.get(cause, ""))
        got = getattr(issue, "branch_name", "<not exposed>") if issue else "<no issue>"
        if got != info["expected_branch"]:
            wrong.append(f"{cause}: branch {got!r} (want {info['expected_branch']!r})")
    scores.add(
        "branch: PR-only causes are their branch's",
        f"{checked - len(wrong)}/{checked}",
        "all",
        not wrong,
        "; ".join(wrong),
    )
    stale = labels["stale_branch"]
    stale_runs = {r["id"] for r in labels["runs"] if r["branch"] == stale}
    seen = {c for run_id, _, _, c in labels["failures"] if run_id in stale_runs}
    fixed = sorted(c for c in seen if labels["causes"][c]["expected_status"] == "RESOLVED")
    reopened = [
        c
        for c in fixed
        if issues.get(main_issue.get(c, "")) is None or issues[main_issue[c]].status != "RESOLVED"
    ]
    scores.add(
        "branch: stale PR does not reopen main's issues",
        f"{len(fixed) - len(reopened)}/{len(fixed)}",
        "all",
        not reopened,
        f"reopened: {reopened}" if reopened else "",
    )


def score(url: str, labels_path: Path) -> Scores:
    """Score a ledger on which detection has run against its labels."""
    labels = json.loads(labels_path.read_text())
    scores = Scores()
    with api.open_ledger(url) as ledger:
        where, issues = _issue_of_failures(ledger)
        main_issue = _grouping(scores, labels, where)
        _flaky(scores, labels, ledger)
        _change_points(scores, labels, ledger)
        _lifecycle(scores, labels, main_issue, issues)
        _branches(scores, labels, main_issue, issues)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the ledger (detection already run)")
    parser.add_argument("--labels", type=Path, help="default: <sqlite file>.labels.json")
    args = parser.parse_args()
    labels = args.labels or Path(args.url.removeprefix("sqlite:///") + ".labels.json")
    print(score(args.url, labels).render())


if __name__ == "__main__":
    main()
