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
from pathlib import Path
from typing import Any

from testledger.analyze.issues.rule_model import (
    DEFAULT_CATEGORY,
    DEFAULT_CODE_TEMPLATE,
    DEFAULT_PRIORITY,
    DEFAULT_RULES_PATH,
    MATCH_FIELDS,
    PRIORITIES,
    Rule,
    RuleDefaults,
    RuleError,
    RuleProblem,
    RuleSet,
    Variables,
    category_prefix,
    render_code,
)
from testledger.analyze.issues.toml_lines import KeyPath, line_of, locate_keys

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

_RULE_KEYS = ("name", "title", "category", "priority", "code", "match")
_DEFAULTS_KEYS = ("category", "priority", "code")
_TOP_KEYS = ("defaults", "rule")
# Placeholders every template may use; variables may not shadow them.
_BUILTINS = ("seq", "priority", "category", "category_prefix")

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
