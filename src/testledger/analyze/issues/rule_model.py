"""Known-pattern rules as values: a rule, the defaults for failures no rule matches, the rule set
that finds a failure's rule, and the problems a rules file can have. Reading the file is
:mod:`testledger.analyze.issues.rules`'s work; this module only holds what it builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

from testledger.errors import TestledgerError
from testledger.model import TestResult

__all__ = [
    "DEFAULT_CATEGORY",
    "DEFAULT_CODE_TEMPLATE",
    "DEFAULT_PRIORITY",
    "DEFAULT_RULES_PATH",
    "MATCH_FIELDS",
    "PRIORITIES",
    "Rule",
    "RuleDefaults",
    "RuleError",
    "RuleProblem",
    "RuleSet",
    "Variables",
    "category_prefix",
    "render_code",
]

DEFAULT_RULES_PATH = Path(".testledger") / "rules.toml"
DEFAULT_CATEGORY = "uncategorized"
DEFAULT_PRIORITY = "MEDIUM"
DEFAULT_CODE_TEMPLATE = "{category_prefix}-{priority}-{seq:03d}"
PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")

#: Match field -> TestResult attribute, in the order the documentation lists them.
MATCH_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "message": "error_message",
        "traceback": "traceback",
        "tool": "tool_name",
        "variation": "variation",
        "provider": "provider",
        "model": "model",
        "status": "status",
        "execution_status": "execution_status",
        "error_type": "error_type",
        "test_id": "test_id",
    }
)

# The order a rule's patterns are tried in: short fields first, so that most results are
# rejected by a regex over a few characters before any message or traceback is searched.
_COST_ORDER = (
    "status",
    "execution_status",
    "provider",
    "model",
    "tool",
    "error_type",
    "variation",
    "test_id",
    "message",
    "traceback",
)

_PREFIXES = {"production": "PROD", "test_infrastructure": "TEST"}

Variables: TypeAlias = Mapping[str, "str | int"]


class RuleProblem(NamedTuple):
    """One problem of a rules file. ``line`` is 1-based; 0 means the file as a whole."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class RuleError(TestledgerError):
    """A rules file that cannot be used, with every problem found in it (not just the first)."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'' if count == 1 else 's'} in rules file"
        super().__init__(head + ":\n" + "\n".join(f"  {problem}" for problem in self.problems))


def category_prefix(category: str) -> str:
    """``{category_prefix}``: PROD, TEST, else the category's first 4 letters upper-cased."""
    known = _PREFIXES.get(category)
    if known is not None:
        return known
    letters = "".join(char for char in category if char.isalnum())
    return letters[:4].upper() or "MISC"


def render_code(
    template: str, seq: int, *, category: str, priority: str, variables: Variables, **extra: object
) -> str:
    """An issue code from a template. ``extra`` overrides everything but ``seq``; a
    ``category`` given there also changes ``{category_prefix}`` unless that is given too."""
    values: dict[str, object] = dict(variables)
    values.update(priority=priority, category=category)
    values.update(extra)
    values.setdefault("category_prefix", category_prefix(str(values["category"])))
    values["seq"] = seq
    return template.format_map(values)


@dataclass(frozen=True)
class RuleDefaults:
    """``[defaults]``: what failures no rule matches get, and what rules leave out inherit."""

    category: str = DEFAULT_CATEGORY
    priority: str = DEFAULT_PRIORITY
    code_template: str = DEFAULT_CODE_TEMPLATE
    variables: Variables = field(default_factory=dict, hash=False)
    source_file: Path | None = None
    source_line: int = 0


@dataclass(frozen=True)
class Rule:
    """One known pattern. ``patterns`` maps match fields (see MATCH_FIELDS) to compiled
    regexes, all of which must ``search`` successfully; it may not be empty."""

    name: str
    title: str | None = None
    category: str = DEFAULT_CATEGORY
    priority: str = DEFAULT_PRIORITY
    code_template: str = DEFAULT_CODE_TEMPLATE
    variables: Variables = field(default_factory=dict, hash=False)
    patterns: Mapping[str, re.Pattern[str]] = field(default_factory=dict, hash=False)
    source_file: Path | None = None
    source_line: int = 0
    # (TestResult attribute, bound search) in _COST_ORDER, built once so match() does no lookups.
    _checks: tuple[tuple[str, Callable[[str], object]], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        # A rule without patterns would match every failure and hide all the rules after it.
        if not self.patterns:
            raise ValueError(f"rule {self.name!r} has no match patterns")
        unknown = sorted(set(self.patterns) - set(MATCH_FIELDS))
        if unknown:
            raise ValueError(f"rule {self.name!r}: unknown match field(s) {', '.join(unknown)}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"rule {self.name!r}: priority must be one of {', '.join(PRIORITIES)}")
        object.__setattr__(self, "patterns", MappingProxyType(dict(self.patterns)))
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))
        checks = tuple(
            (MATCH_FIELDS[name], self.patterns[name].search)
            for name in _COST_ORDER
            if name in self.patterns
        )
        object.__setattr__(self, "_checks", checks)

    def matches(self, result: TestResult) -> bool:
        """Whether every pattern finds its field (a None field never matches). ``status`` is a
        str enum, so patterns see its value ("FAIL") without a conversion."""
        for attribute, search in self._checks:
            value = getattr(result, attribute)
            if value is None or search(value) is None:
                return False
        return True


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, in file order. ``path`` is None when no file was read."""

    rules: tuple[Rule, ...] = ()
    defaults: RuleDefaults = field(default_factory=RuleDefaults)
    path: Path | None = None
    # Each rule's checks as (index into the fetched values, search): the fields any rule uses
    # are fetched once per result with one attrgetter call instead of once per rule.
    _plan: tuple[tuple[Rule, tuple[tuple[int, Callable[[str], object]], ...]], ...] = field(
        init=False, repr=False, compare=False
    )
    _fetch: Callable[[TestResult], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        attributes = sorted({attribute for rule in self.rules for attribute, _ in rule._checks})
        index = {attribute: position for position, attribute in enumerate(attributes)}
        plan = tuple(
            (rule, tuple((index[attribute], search) for attribute, search in rule._checks))
            for rule in self.rules
        )
        object.__setattr__(self, "_plan", plan)
        # attrgetter of one name returns the bare value: a spare name keeps it a tuple.
        object.__setattr__(self, "_fetch", attrgetter(*attributes, "test_id"))

    def match(self, result: TestResult) -> Rule | None:
        """The first rule that matches the result, or None."""
        if not self._plan:
            return None
        values = self._fetch(result)
        for rule, checks in self._plan:
            for position, search in checks:
                value = values[position]
                if value is None or search(value) is None:
                    break
            else:
                return rule
        return None

    def format_code(self, owner: Rule | RuleDefaults, seq: int, **extra: object) -> str:
        """The issue code ``owner``'s template gives for ``seq`` (see ``render_code``)."""
        try:
            # detect passes category and priority again (its own defaults for unmatched
            # failures): what the caller gives wins.
            given: dict[str, Any] = {"category": owner.category, "priority": owner.priority}
            given.update(extra)
            return render_code(owner.code_template, seq, variables=owner.variables, **given)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            # Load-time validation makes this unreachable unless ``extra`` breaks the template.
            where = owner.source_file or self.path or DEFAULT_RULES_PATH
            problem = f"code template {owner.code_template!r} does not render: {exc!r}"
            raise RuleError([RuleProblem(where, owner.source_line, problem)]) from None

    def describe(self) -> list[dict[str, Any]]:
        """One dict per rule, in match order, for the CLI to show."""
        described = []
        for rule in self.rules:
            where = rule.source_file or self.path
            described.append(
                {
                    "name": rule.name,
                    "title": rule.title,
                    "category": rule.category,
                    "priority": rule.priority,
                    "code": rule.code_template,
                    "example_code": self.format_code(rule, 1),
                    "match": {name: pattern.pattern for name, pattern in rule.patterns.items()},
                    "variables": dict(rule.variables),
                    "source": f"{where}:{rule.source_line}" if where else None,
                }
            )
        return described
