"""Known-pattern rules: a failure that matches a rule becomes that rule's issue.

The rules file (TOML, ``.testledger/rules.toml`` by default)::

    [defaults]                  # for failures no rule matches (grouped by fingerprint instead)
    category = "uncategorized"
    priority = "MEDIUM"                        # CRITICAL / HIGH / MEDIUM / LOW
    code = "{category_prefix}-{priority}-{seq:03d}"

    [[rule]]
    name = "kimi-timeout"       # required, unique: an issue remembers its rule by name
    title = "Kimi provider times out"   # optional; category, priority, code default as above
    category = "production"
    priority = "HIGH"
    code = "{phase}-{priority}-{seq:03d}"
    phase = "PHASE2"            # any other key is a template variable: the code must use it
    [rule.match]                # required: every field given must match (re.search)
    message = 'timed out after \\d+ ?s'
    provider = "^kimi$"

Rules are tried in file order and the first match wins; a field that is None never matches.
Loading reports every problem of the file at once, with file and line, before anything is written.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

from testledger.errors import TestledgerError
from testledger.model import TestResult

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEFAULT_CODE_TEMPLATE",
    "DEFAULT_RULES_PATH",
    "MATCH_FIELDS",
    "PRIORITIES",
    "Rule",
    "RuleDefaults",
    "RuleError",
    "RuleProblem",
    "RuleSet",
    "category_prefix",
    "line_of",
    "load_rules",
    "locate_keys",
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

_RULE_KEYS = ("name", "title", "category", "priority", "code", "match")
_DEFAULTS_KEYS = ("category", "priority", "code")
_TOP_KEYS = ("defaults", "rule")
# Placeholders every template may use; variables may not shadow them.
_BUILTINS = ("seq", "priority", "category", "category_prefix")
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


# --- where things are in the raw text -------------------------------------------------------
# tomllib gives no positions for values, so a light scan of the text finds the line of every
# table header and key. It only has to agree with tomllib on what it finds, not parse TOML.

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)

KeyPath: TypeAlias = tuple["str | int", ...]


def _split_key(dotted: str) -> tuple[str, ...]:
    # Escapes inside quoted key names are left as written: no rules key needs them.
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(dotted))


def locate_keys(text: str) -> dict[KeyPath, int]:
    """The 1-based line of every table and key of a TOML text, by key path.

    The n-th ``[[rule]]`` header (from 0) is ``("rule", n)``, a key in it ``("rule", n, "name")``,
    ``[rule.match]`` after it ``("rule", n, "match")`` and its keys
    ``("rule", n, "match", "message")``. Dotted keys also record their prefixes. Keys inside
    inline tables are not located: look them up with ``line_of``, which falls back to the
    nearest enclosing key that was found.
    """
    found: dict[KeyPath, int] = {}
    array_counts: dict[KeyPath, int] = {}
    current: KeyPath = ()
    open_string: str | None = None  # the delimiter of a multi-line string being skipped

    def resolve(parts: tuple[str, ...]) -> KeyPath:
        # An array-of-tables name inside a header means its latest element: [rule.match].
        path: list[str | int] = []
        for position, part in enumerate(parts):
            path.append(part)
            if position < len(parts) - 1 and tuple(path) in array_counts:
                path.append(array_counts[tuple(path)])
        return tuple(path)

    # TOML ends lines at \n only: str.splitlines() would also split at \x85, \u2028 and others,
    # which strings may hold, and count lines differently from tomllib.
    for number, line in enumerate(text.split("\n"), start=1):
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        if match := _ARRAY_HEADER.match(line):
            table = resolve(_split_key(match[1]))
            array_counts[table] = array_counts.get(table, -1) + 1
            current = (*table, array_counts[table])
            found.setdefault(current, number)
        elif match := _TABLE_HEADER.match(line):
            current = resolve(_split_key(match[1]))
            found.setdefault(current, number)
        elif match := _KEY_LINE.match(line):
            key = (*current, *_split_key(match[1]))
            for length in range(len(current) + 1, len(key) + 1):
                found.setdefault(key[:length], number)
            rest = line[match.end() :]
            for delimiter in ('"""', "'''"):
                if rest.count(delimiter) % 2 == 1:
                    open_string = delimiter
                    break
    return found


def line_of(found: Mapping[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its nearest located ancestor; 0 when none is known."""
    for length in range(len(path), 0, -1):
        line = found.get(path[:length])
        if line is not None:
            return line
    return 0


# --- loading ----------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)|\s*\(at end of document\)")


def load_rules(path: Path | None = None, *, root: Path | None = None) -> RuleSet:
    """Read and check a rules file; raise RuleError listing every problem in it.

    ``path`` None reads ``.testledger/rules.toml`` under ``root`` (default: the working
    directory) when it exists, else gives an empty RuleSet (``path`` None). A ``path`` given
    explicitly must exist."""
    if path is None:
        path = (root or Path.cwd()) / DEFAULT_RULES_PATH
        if not path.exists():
            return RuleSet()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RuleError([RuleProblem(path, 0, "rules file not found")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RuleError([RuleProblem(path, 0, f"cannot read rules file: {reason}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RuleError([RuleProblem(path, line, "not UTF-8 text")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError([_toml_problem(path, text, exc)]) from None
    return _Loader(path, text).load(data)


def _toml_problem(path: Path, text: str, exc: Exception) -> RuleProblem:
    message = str(exc)
    line = getattr(exc, "lineno", None)  # Python 3.14+; older ones only say it in the message
    position = _TOML_POSITION.search(message)
    if line is None and position is not None:
        # "end of document": the line tomllib would give (3.14's lineno) for that position.
        line = int(position[1]) if position[1] else text.count("\n") + 1
    if position is not None:
        message = message[: position.start()] + message[position.end() :]
    return RuleProblem(path, int(line or 0), f"invalid TOML: {message}")


class _Loader:
    """Builds a RuleSet from parsed TOML, collecting problems instead of stopping at one."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.found = locate_keys(text)
        self.problems: list[RuleProblem] = []

    def report(self, where: KeyPath, message: str) -> None:
        self.problems.append(RuleProblem(self.path, line_of(self.found, where), message))

    def load(self, data: dict[str, Any]) -> RuleSet:
        for key in data:
            if key not in _TOP_KEYS:
                known = ", ".join(_TOP_KEYS)
                self.report((key,), f"unknown top-level key {key!r} (known: {known})")
        defaults = self.defaults(data.get("defaults", {}))
        rules: list[Rule] = []
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            self.report(("rule",), "rules are written [[rule]] (an array of tables), not [rule]")
            raw_rules = []
        # Names are checked on the raw tables, so that a duplicate of a rule that has problems
        # of its own is still reported.
        first_line: dict[str, int] = {}
        for index, table in enumerate(raw_rules):
            rule = self.rule(index, table, defaults)
            name = table.get("name") if isinstance(table, dict) else None
            if isinstance(name, str) and name in first_line:
                self.report(
                    ("rule", index, "name"),
                    f"duplicate rule name {name!r} (first defined at line {first_line[name]})",
                )
            elif isinstance(name, str):
                first_line[name] = line_of(self.found, ("rule", index))
            if rule is not None:
                rules.append(rule)
        if self.problems:
            raise RuleError(self.problems)
        return RuleSet(tuple(rules), defaults, self.path)

    def defaults(self, table: object) -> RuleDefaults:
        where: KeyPath = ("defaults",)
        fallback = RuleDefaults(source_file=self.path, source_line=line_of(self.found, where))
        if not isinstance(table, dict):
            self.report(where, "defaults must be a table: [defaults]")
            return fallback
        before = len(self.problems)
        category = self.text(table, where, "category", "[defaults]", DEFAULT_CATEGORY)
        priority = self.priority(table, where, "[defaults]", DEFAULT_PRIORITY)
        code = self.text(table, where, "code", "[defaults]", DEFAULT_CODE_TEMPLATE)
        variables = self.variables(table, where, "[defaults]", code, {})
        if len(self.problems) == before:  # a bad variable would also fail the template
            self.template((*where, "code"), "[defaults]", code, variables, category, priority)
        if len(self.problems) > before:
            return fallback
        return RuleDefaults(category, priority, code, variables, self.path, fallback.source_line)

    def rule(self, index: int, table: object, defaults: RuleDefaults) -> Rule | None:
        where: KeyPath = ("rule", index)
        if not isinstance(table, dict):
            self.report(where, f"rule #{index + 1} must be a table")
            return None
        before = len(self.problems)
        name = table.get("name")
        label = f"rule {name!r}" if isinstance(name, str) and name.strip() else f"rule #{index + 1}"
        if name is None:
            self.report(where, f"{label}: missing required key 'name'")
        elif not isinstance(name, str) or not name.strip():
            self.report((*where, "name"), f"{label}: name must be a non-empty string")
        title = self.text(table, where, "title", label, None)
        category = self.text(table, where, "category", label, defaults.category)
        priority = self.priority(table, where, label, defaults.priority)
        code = self.text(table, where, "code", label, defaults.code_template)
        checked = len(self.problems)
        variables = self.variables(table, where, label, code, defaults.variables)
        # An inherited template was checked with [defaults]; the rule's variables may change it.
        # After a bad variable the template would fail too: that is one problem, not two.
        if len(self.problems) == checked and ("code" in table or variables != defaults.variables):
            self.template((*where, "code"), label, code, variables, category, priority)
        patterns = self.patterns(table, where, label)
        if len(self.problems) > before or not isinstance(name, str):
            return None
        return Rule(
            name=name,
            title=title,
            category=category,
            priority=priority,
            code_template=code,
            variables=variables,
            patterns=patterns,
            source_file=self.path,
            source_line=line_of(self.found, where),
        )

    def text(
        self, table: dict[str, Any], where: KeyPath, key: str, label: str, default: Any
    ) -> Any:
        value = table.get(key, default)
        if key in table and (not isinstance(value, str) or not value.strip()):
            self.report((*where, key), f"{label}: {key} must be a non-empty string")
            return default
        return value

    def priority(self, table: dict[str, Any], where: KeyPath, label: str, default: str) -> str:
        value = table.get("priority", default)
        if value not in PRIORITIES:
            self.report(
                (*where, "priority"),
                f"{label}: priority {value!r} must be one of {', '.join(PRIORITIES)}",
            )
            return default
        return str(value)

    def variables(
        self, table: dict[str, Any], where: KeyPath, label: str, code: str, inherited: Variables
    ) -> dict[str, str | int]:
        known = _RULE_KEYS if where[0] == "rule" else _DEFAULTS_KEYS
        # Keys that are not settings are template variables - but only when the template uses
        # them, so that a misspelt setting ("priorty") is an error rather than a silent variable.
        try:
            used = set(_placeholders(code))
        except ValueError:
            used = set()  # template() reports the broken template itself
        variables = dict(inherited)
        for key, value in table.items():
            if key in known:
                continue
            if key in _BUILTINS:
                self.report((*where, key), f"{label}: {key!r} is a built-in placeholder")
            elif key not in used:
                self.report(
                    (*where, key),
                    f"{label}: unknown key {key!r} (known: {', '.join(known)}; any other key "
                    f"is a code template variable, and the code template does not use it)",
                )
            elif isinstance(value, bool) or not isinstance(value, (str, int)):
                self.report((*where, key), f"{label}: variable {key!r} must be a string or int")
            else:
                variables[key] = value
        return variables

    def patterns(
        self, table: dict[str, Any], where: KeyPath, label: str
    ) -> dict[str, re.Pattern[str]]:
        match = table.get("match")
        if match is None:
            self.report(where, f"{label}: missing required key 'match' (a [rule.match] table)")
            return {}
        if not isinstance(match, dict):
            self.report((*where, "match"), f"{label}: match must be a table: [rule.match]")
            return {}
        if not match:
            self.report(
                (*where, "match"), f"{label}: match is empty (a rule needs at least one pattern)"
            )
        patterns = {}
        for name, pattern in match.items():
            at = (*where, "match", name)
            if name not in MATCH_FIELDS:
                fields = ", ".join(MATCH_FIELDS)
                self.report(at, f"{label}: unknown match field {name!r} (known: {fields})")
            elif not isinstance(pattern, str):
                self.report(at, f"{label}: match.{name} must be a regular expression string")
            else:
                try:
                    patterns[name] = re.compile(pattern)
                except re.error as exc:
                    self.report(at, f"{label}: bad regular expression in match.{name}: {exc}")
        return patterns

    def template(
        self, at: KeyPath, label: str, code: str, variables: Variables, category: str, priority: str
    ) -> None:
        known = {*_BUILTINS, *variables}
        try:
            names = _placeholders(code)
        except ValueError as exc:
            self.report(at, f"{label}: bad code template {code!r}: {exc}")
            return
        for name in names:
            if name not in known:
                listed = ", ".join(sorted(known))
                self.report(
                    at, f"{label}: unknown placeholder {{{name}}} in code (known: {listed})"
                )
                return
        # Codes are made unique by counting seq up: without it the count would never end.
        if "seq" not in names:
            self.report(at, f"{label}: code template {code!r} must use {{seq}}")
            return
        try:
            rendered = render_code(
                code, 1, category=category, priority=priority, variables=variables
            )
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            self.report(at, f"{label}: code template {code!r} does not render: {exc}")
            return
        if not rendered.strip():
            self.report(at, f"{label}: code template {code!r} renders an empty code")


_FORMATTER = string.Formatter()


def _placeholders(template: str) -> list[str]:
    """The placeholder names of a code template; ValueError when it is not one."""
    names = []
    for _literal, name, spec, _conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        # Plain names only: "{category.__class__}" would reach into objects, "{}" has no name.
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a plain name")
        if spec and "{" in spec:
            raise ValueError(f"nested placeholder in {{{name}:{spec}}}")
        names.append(name)
    return names
