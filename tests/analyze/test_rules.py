"""Tests for known-pattern rules (testledger.analyze.issues.rules)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testledger.analyze.issues.rules import (
    DEFAULT_RULES_PATH,
    MATCH_FIELDS,
    PRIORITIES,
    Rule,
    RuleDefaults,
    RuleError,
    RuleSet,
    category_prefix,
    line_of,
    load_rules,
    locate_keys,
)
from testledger.errors import TestledgerError
from testledger.model import TestResult


def _result(**overrides: Any) -> TestResult:
    values: dict[str, Any] = {
        "test_id": "tests/test_tools.py::test_search[kimi]",
        "tool_name": "search",
        "variation": "basic",
        "status": "FAIL",
        "provider": "kimi",
        "model": "kimi-k2",
        "execution_status": "timeout",
        "error_type": "TimeoutError",
        "error_message": "TimeoutError: request timed out after 30 s",
        "traceback": 'File "src/app/client.py", line 12, in call\n    raise TimeoutError',
    }
    values.update(overrides)
    return TestResult(**values)


def _rule(name: str = "r", **patterns: str) -> Rule:
    return Rule(name=name, patterns={key: re.compile(value) for key, value in patterns.items()})


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- matching ---------------------------------------------------------------------------------

# (id, patterns, result overrides, matches?)
MATCH_CASES = [
    ("message", {"message": r"timed out after \d+ ?s"}, {}, True),
    ("message_miss", {"message": "connection refused"}, {}, False),
    ("message_search_not_fullmatch", {"message": "timed out"}, {}, True),
    ("message_anchored_miss", {"message": "^timed out"}, {}, False),
    ("traceback", {"traceback": r"app/client\.py"}, {}, True),
    ("traceback_none", {"traceback": ".*"}, {"traceback": None}, False),
    ("tool", {"tool": "^search$"}, {}, True),
    ("tool_miss", {"tool": "^fetch$"}, {}, False),
    ("variation", {"variation": "^basic$"}, {}, True),
    ("variation_miss", {"variation": "^edge"}, {}, False),
    ("provider", {"provider": "^kimi$"}, {}, True),
    ("provider_none_never_matches", {"provider": ".*"}, {"provider": None}, False),
    ("model", {"model": "^kimi-"}, {}, True),
    ("model_none", {"model": ""}, {"model": None}, False),
    ("status_fail", {"status": "^(FAIL|ERROR)$"}, {}, True),
    ("status_error", {"status": "^ERROR$"}, {"status": "ERROR"}, True),
    ("status_is_its_value", {"status": "^FAIL$"}, {"status": "failed"}, True),
    ("status_miss", {"status": "^ERROR$"}, {}, False),
    ("execution_status", {"execution_status": "timeout"}, {}, True),
    ("execution_status_none", {"execution_status": "x"}, {"execution_status": None}, False),
    ("error_type", {"error_type": r"^Timeout"}, {}, True),
    ("error_type_miss", {"error_type": "^KeyError$"}, {}, False),
    ("test_id", {"test_id": r"test_search\[kimi\]"}, {}, True),
    ("test_id_miss", {"test_id": "test_other"}, {}, False),
    ("empty_string_field_matches_empty_pattern", {"model": "^$"}, {"model": ""}, True),
    ("case_sensitive_by_default", {"message": "TIMED OUT"}, {}, False),
    ("flag_ignorecase", {"message": "(?i)TIMED OUT"}, {}, True),
    ("flag_multiline", {"traceback": r"(?m)^\s+raise TimeoutError$"}, {}, True),
    ("flag_dotall", {"traceback": r"(?s)client\.py.*raise"}, {}, True),
    ("all_fields_must_match", {"provider": "^kimi$", "tool": "^fetch$"}, {}, False),
    ("all_fields_match", {"provider": "^kimi$", "tool": "^search$", "status": "FAIL"}, {}, True),
]


@pytest.mark.parametrize(
    ("patterns", "overrides", "expected"),
    [pytest.param(p, o, e, id=i) for i, p, o, e in MATCH_CASES],
)
def test_match(patterns: dict[str, str], overrides: dict[str, Any], expected: bool) -> None:
    rule = _rule(**patterns)
    result = _result(**overrides)
    assert rule.matches(result) is expected
    assert (RuleSet((rule,)).match(result) is rule) is expected


def test_every_match_field_is_covered() -> None:
    covered = {field for _, patterns, _, _ in MATCH_CASES for field in patterns}
    assert covered == set(MATCH_FIELDS)


def test_first_matching_rule_wins() -> None:
    miss = _rule("miss", provider="^openai$")
    broad = _rule("broad", message="timed out")
    narrow = _rule("narrow", message="timed out", provider="^kimi$")
    rules = RuleSet((miss, broad, narrow))
    assert rules.match(_result()) is broad
    assert RuleSet((miss, narrow, broad)).match(_result()) is narrow
    assert rules.match(_result(error_message="boom")) is None


def test_empty_ruleset_matches_nothing() -> None:
    assert RuleSet().match(_result()) is None
    assert RuleSet().defaults == RuleDefaults()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({}, "no match patterns", id="no_patterns"),
        pytest.param({"patterns": {"colour": re.compile("x")}}, "colour", id="unknown_field"),
        pytest.param(
            {"patterns": {"message": re.compile("x")}, "priority": "URGENT"},
            "priority",
            id="bad_priority",
        ),
    ],
)
def test_rule_checks_itself(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule(name="r", **kwargs)


def test_rule_is_frozen_and_hashable() -> None:
    rule = _rule(message="x")
    assert hash(rule) == hash(_rule(message="x"))
    assert rule == _rule(message="x")
    with pytest.raises(AttributeError):
        rule.name = "other"  # type: ignore[misc]


# --- issue codes ------------------------------------------------------------------------------

# (id, template, category, priority, variables, seq, extra, expected)
CODE_CASES = [
    (
        "default_template",
        "{category_prefix}-{priority}-{seq:03d}",
        "production",
        "HIGH",
        {},
        1,
        {},
        "PROD-HIGH-001",
    ),
    (
        "test_infrastructure",
        "{category_prefix}-{priority}-{seq:03d}",
        "test_infrastructure",
        "LOW",
        {},
        12,
        {},
        "TEST-LOW-012",
    ),
    (
        "other_category_first_4_letters",
        "{category_prefix}-{seq}",
        "performance",
        "LOW",
        {},
        7,
        {},
        "PERF-7",
    ),
    (
        "phase_variable",
        "{phase}-{priority}-{seq:03d}",
        "production",
        "HIGH",
        {"phase": "PHASE2"},
        1,
        {},
        "PHASE2-HIGH-001",
    ),
    ("int_variable", "P{phase:02d}-{seq}", "x", "LOW", {"phase": 3}, 4, {}, "P03-4"),
    ("seq_beyond_width", "{priority}-{seq:03d}", "x", "CRITICAL", {}, 1234, {}, "CRITICAL-1234"),
    ("category_placeholder", "{category}/{seq}", "flaky_infra", "LOW", {}, 2, {}, "flaky_infra/2"),
    (
        "extra_overrides_category_and_prefix",
        "{category_prefix}-{priority}-{seq:03d}",
        "uncategorized",
        "MEDIUM",
        {},
        5,
        {"category": "production", "priority": "HIGH"},
        "PROD-HIGH-005",
    ),
]


@pytest.mark.parametrize(
    ("template", "category", "priority", "variables", "seq", "extra", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CODE_CASES],
)
def test_format_code(
    template: str,
    category: str,
    priority: str,
    variables: dict[str, Any],
    seq: int,
    extra: dict[str, Any],
    expected: str,
) -> None:
    rule = Rule(
        name="r",
        category=category,
        priority=priority,
        code_template=template,
        variables=variables,
        patterns={"message": re.compile("x")},
    )
    assert RuleSet((rule,)).format_code(rule, seq, **extra) == expected


def test_format_code_for_defaults() -> None:
    rules = RuleSet()
    assert rules.format_code(rules.defaults, 3) == "UNCA-MEDIUM-003"
    assert rules.format_code(rules.defaults, 1, category="ui", priority="LOW") == "UI-LOW-001"


def test_format_code_with_a_breaking_extra_is_a_rule_error() -> None:
    rule = Rule(name="r", code_template="{priority:03d}-{seq}", patterns={"tool": re.compile("")})
    with pytest.raises(RuleError, match="does not render"):
        RuleSet((rule,)).format_code(rule, 1)


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        pytest.param("production", "PROD", id="production"),
        pytest.param("test_infrastructure", "TEST", id="test_infrastructure"),
        pytest.param("uncategorized", "UNCA", id="first_four"),
        pytest.param("ui", "UI", id="short"),
        pytest.param("data-pipeline", "DATA", id="punctuation_dropped"),
        pytest.param("a_b_c_d_e", "ABCD", id="letters_not_characters"),
        pytest.param("---", "MISC", id="no_letters"),
    ],
)
def test_category_prefix(category: str, expected: str) -> None:
    assert category_prefix(category) == expected


# --- loading ----------------------------------------------------------------------------------

EXAMPLE = """\
# Known patterns for the tool-validation suite.
[defaults]
category = "uncategorized"
priority = "LOW"
code = "{category_prefix}-{priority}-{seq:03d}"

[[rule]]
name = "kimi-timeout"
title = "Kimi provider times out"
category = "production"
priority = "HIGH"
code = "{phase}-{priority}-{seq:03d}"
phase = "PHASE2"
[rule.match]
message = 'timed out after \\d+ ?s'
provider = "^kimi$"
status = "^(FAIL|ERROR)$"

[[rule]]
name = "fixture-missing"
match = { message = "(?i)fixture '\\\\w+' not found" }
"""


def test_load_example(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE)
    rules = load_rules(path)
    assert rules.path == path
    assert rules.defaults == RuleDefaults(
        "uncategorized", "LOW", "{category_prefix}-{priority}-{seq:03d}", {}, path, 2
    )
    kimi, fixture = rules.rules
    assert (kimi.name, kimi.title, kimi.category, kimi.priority) == (
        "kimi-timeout",
        "Kimi provider times out",
        "production",
        "HIGH",
    )
    assert dict(kimi.variables) == {"phase": "PHASE2"}
    assert {k: p.pattern for k, p in kimi.patterns.items()} == {
        "message": r"timed out after \d+ ?s",
        "provider": "^kimi$",
        "status": "^(FAIL|ERROR)$",
    }
    assert (kimi.source_file, kimi.source_line) == (path, 7)
    # What a rule leaves out comes from [defaults].
    assert (fixture.title, fixture.category, fixture.priority) == (None, "uncategorized", "LOW")
    assert fixture.source_line == 19
    assert rules.format_code(kimi, 1) == "PHASE2-HIGH-001"
    assert rules.format_code(fixture, 2) == "UNCA-LOW-002"
    assert rules.match(_result()) is kimi
    assert rules.match(_result(error_message="Fixture 'db' not found")) is fixture


def test_describe(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE)
    described = load_rules(path).describe()
    assert [entry["name"] for entry in described] == ["kimi-timeout", "fixture-missing"]
    assert described[0] == {
        "name": "kimi-timeout",
        "title": "Kimi provider times out",
        "category": "production",
        "priority": "HIGH",
        "code": "{phase}-{priority}-{seq:03d}",
        "example_code": "PHASE2-HIGH-001",
        "match": {
            "message": r"timed out after \d+ ?s",
            "provider": "^kimi$",
            "status": "^(FAIL|ERROR)$",
        },
        "variables": {"phase": "PHASE2"},
        "source": f"{path}:7",
    }


def test_missing_default_file_is_an_empty_ruleset(tmp_path: Path) -> None:
    rules = load_rules(None, root=tmp_path)
    assert rules == RuleSet()
    assert rules.path is None


def test_default_file_is_read(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_RULES_PATH).parent.mkdir()
    (tmp_path / DEFAULT_RULES_PATH).write_text(EXAMPLE, encoding="utf-8")
    assert len(load_rules(None, root=tmp_path).rules) == 2


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    assert isinstance(caught.value, TestledgerError)
    assert caught.value.problems == [(path, 0, "rules file not found")]
    assert f"{path}: rules file not found" in str(caught.value)


def test_empty_file_is_defaults_only(tmp_path: Path) -> None:
    rules = load_rules(_write(tmp_path, "# nothing yet\n"))
    assert rules.rules == ()
    assert rules.defaults.priority == "MEDIUM"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(b'[[rule]]\nname = "caf\xe9"\n')
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    assert caught.value.problems == [(path, 2, "not UTF-8 text")]


_RULE_HEAD = '[[rule]]\nname = "r"\n'

# (id, file text, expected (line, message fragment) for each problem, in order)
ERROR_CASES = [
    ("toml_syntax", 'x = 1\n[[rule]]\nname = "a"\nname = \n', [(4, "invalid TOML")]),
    ("toml_duplicate_key", '[[rule]]\nname = "a"\nname = "b"\n', [(3, "invalid TOML")]),
    ("toml_newline_in_string", '[[rule]]\nname = "a\n', [(2, "invalid TOML: Illegal character")]),
    ("toml_at_end_of_document", '[[rule]]\nname = """a\n', [(3, "invalid TOML: Unterminated")]),
    (
        "unknown_top_level_key",
        'rules = 1\n\n[[rule]]\nname = "r"\nmatch.tool = "x"\n',
        [(1, "unknown top-level key 'rules' (known: defaults, rule)")],
    ),
    ("rule_as_table", '[rule]\nname = "r"\n', [(1, "[[rule]] (an array of tables)")]),
    (
        "unknown_rule_key",
        _RULE_HEAD + 'priorty = "HIGH"\n[rule.match]\ntool = "x"\n',
        [
            (
                3,
                "rule 'r': unknown key 'priorty' (known: name, title, category, priority, code, "
                "match;",
            )
        ],
    ),
    (
        "unknown_defaults_key",
        '[defaults]\ncolor = "red"\n',
        [(2, "[defaults]: unknown key 'color'")],
    ),
    (
        "reserved_variable",
        _RULE_HEAD + 'seq = 3\n[rule.match]\ntool = "x"\n',
        [(3, "rule 'r': 'seq' is a built-in placeholder")],
    ),
    (
        "missing_name",
        '\n[[rule]]\ntitle = "t"\n[rule.match]\ntool = "x"\n',
        [(2, "rule #1: missing required key 'name'")],
    ),
    (
        "empty_name",
        '[[rule]]\nname = " "\nmatch.tool = "x"\n',
        [(2, "rule #1: name must be a non-empty string")],
    ),
    (
        "missing_match",
        _RULE_HEAD + 'priority = "LOW"\n',
        [(1, "rule 'r': missing required key 'match'")],
    ),
    (
        "match_not_table",
        _RULE_HEAD + 'match = "timeout"\n',
        [(3, "rule 'r': match must be a table")],
    ),
    (
        "match_empty",
        _RULE_HEAD + "[rule.match]\n",
        [(3, "rule 'r': match is empty (a rule needs at least one pattern)")],
    ),
    (
        "unknown_match_field",
        _RULE_HEAD + '[rule.match]\ntool = "x"\ncolour = "red"\n',
        [
            (
                5,
                "rule 'r': unknown match field 'colour' (known: message, traceback, tool, "
                "variation, provider, model, status, execution_status, error_type, test_id)",
            )
        ],
    ),
    (
        "bad_regex",
        _RULE_HEAD + '[rule.match]\ntool = "x"\nmessage = "timed out ("\n',
        [
            (
                5,
                "rule 'r': bad regular expression in match.message: missing ), unterminated "
                "subpattern at position 10",
            )
        ],
    ),
    (
        "bad_regex_inline_table",
        _RULE_HEAD + 'match = { provider = "[a-" }\n',
        [(3, "rule 'r': bad regular expression in match.provider: unterminated character set")],
    ),
    (
        "bad_regex_dotted_key",
        _RULE_HEAD + 'match.model = "*x"\n',
        [(3, "rule 'r': bad regular expression in match.model: nothing to repeat")],
    ),
    (
        "pattern_not_string",
        _RULE_HEAD + "[rule.match]\ntool = 3\n",
        [(4, "rule 'r': match.tool must be a regular expression string")],
    ),
    (
        "bad_priority",
        _RULE_HEAD + 'priority = "urgent"\nmatch.tool = "x"\n',
        [(3, "rule 'r': priority 'urgent' must be one of CRITICAL, HIGH, MEDIUM, LOW")],
    ),
    (
        "bad_defaults_priority",
        '[defaults]\npriority = "P1"\n',
        [(2, "[defaults]: priority 'P1' must be one of")],
    ),
    (
        "title_not_string",
        _RULE_HEAD + 'title = 5\nmatch.tool = "x"\n',
        [(3, "rule 'r': title must be a non-empty string")],
    ),
    (
        "empty_category",
        _RULE_HEAD + 'category = ""\nmatch.tool = "x"\n',
        [(3, "rule 'r': category must be a non-empty string")],
    ),
    (
        "duplicate_name",
        _RULE_HEAD + 'match.tool = "x"\n\n' + _RULE_HEAD + 'match.tool = "y"\n',
        [(6, "duplicate rule name 'r' (first defined at line 1)")],
    ),
    (
        "unknown_placeholder",
        _RULE_HEAD + 'code = "{phase}-{seq}"\nmatch.tool = "x"\n',
        [
            (
                3,
                "rule 'r': unknown placeholder {phase} in code (known: category, category_prefix, "
                "priority, seq)",
            )
        ],
    ),
    (
        "template_without_seq",
        _RULE_HEAD + 'code = "KIMI-{priority}"\nmatch.tool = "x"\n',
        [(3, "rule 'r': code template 'KIMI-{priority}' must use {seq}")],
    ),
    (
        "template_bad_format_spec",
        _RULE_HEAD + 'code = "{priority:03d}-{seq}"\nmatch.tool = "x"\n',
        [(3, "does not render: Unknown format code 'd'")],
    ),
    (
        "template_unbalanced_brace",
        _RULE_HEAD + 'code = "{seq"\nmatch.tool = "x"\n',
        [(3, "rule 'r': bad code template '{seq'")],
    ),
    (
        "template_attribute_access",
        _RULE_HEAD + 'code = "{category.upper}{seq}"\nmatch.tool = "x"\n',
        [(3, "placeholder {category.upper} is not a plain name")],
    ),
    (
        "template_positional",
        _RULE_HEAD + 'code = "{}{seq}"\nmatch.tool = "x"\n',
        [(3, "placeholder {} is not a plain name")],
    ),
    (
        "bad_defaults_template",
        '[defaults]\ncategory = "x"\ncode = "{nope}-{seq}"\n',
        [(3, "[defaults]: unknown placeholder {nope}")],
    ),
    (
        "variable_wrong_type",
        _RULE_HEAD + 'code = "{phase}{seq}"\nphase = [1]\nmatch.tool = "x"\n',
        [(4, "rule 'r': variable 'phase' must be a string or int")],
    ),
    (
        "rule_variable_breaks_inherited_template",
        '[defaults]\ncode = "P{phase:02d}-{seq}"\nphase = 1\n\n'
        + _RULE_HEAD
        + 'phase = "two"\nmatch.tool = "x"\n',
        [(5, "rule 'r': code template 'P{phase:02d}-{seq}' does not render")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in ERROR_CASES]
)
def test_errors_name_file_and_line(
    tmp_path: Path, text: str, expected: list[tuple[int, str]]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    problems = caught.value.problems
    assert [(p.path, p.line) for p in problems] == [(path, line) for line, _ in expected]
    for problem, (line, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message
        assert f"{path}:{line}: " in str(caught.value)


MULTI_ERROR = """\
bogus = 1

[defaults]
priority = "URGENT"

[[rule]]
name = "a"
priorty = "HIGH"
[rule.match]
message = "timed out ("
colour = "red"

[[rule]]
title = "no name"
code = "{phase}-{seq:03d}"
[rule.match]
provider = "^kimi$"

[[rule]]
name = "ok"
match = { tool = "x" }

[[rule]]
name = "a"
match = { tool = "x" }
"""


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, MULTI_ERROR)
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    text = str(caught.value)
    assert text.splitlines()[0] == "8 problems in rules file:"
    assert [p.line for p in caught.value.problems] == [1, 4, 8, 10, 11, 13, 15, 24]
    for fragment in [
        f"{path}:1: unknown top-level key 'bogus'",
        f"{path}:4: [defaults]: priority 'URGENT'",
        f"{path}:8: rule 'a': unknown key 'priorty'",
        f"{path}:10: rule 'a': bad regular expression in match.message",
        f"{path}:11: rule 'a': unknown match field 'colour'",
        f"{path}:13: rule #2: missing required key 'name'",
        f"{path}:15: rule #2: unknown placeholder {{phase}}",
        f"{path}:24: duplicate rule name 'a' (first defined at line 6)",
    ]:
        assert fragment in text


# --- locating keys in the raw text -----------------------------------------------------------

# (id, text, path, expected line)
LOCATE_CASES = [
    ("top_level_key", "a = 1\nb = 2\n", ("b",), 2),
    ("table_header", "\n[defaults]\npriority = 'LOW'\n", ("defaults",), 2),
    ("table_key", "[defaults]\n\npriority = 'LOW'\n", ("defaults", "priority"), 3),
    ("nth_rule_header", "[[rule]]\nname='a'\n[[rule]]\nname='b'\n", ("rule", 1), 3),
    ("nth_rule_key", "[[rule]]\nname='a'\n[[rule]]\nname='b'\n", ("rule", 1, "name"), 4),
    ("rule_subtable", "[[rule]]\n[rule.match]\n[[rule]]\n[rule.match]\n", ("rule", 1, "match"), 4),
    (
        "rule_subtable_key",
        "[[rule]]\n[ rule . match ]\n  message = 'x'\n",
        ("rule", 0, "match", "message"),
        3,
    ),
    ("dotted_key", "[[rule]]\nname='a'\nmatch.tool = 'x'\n", ("rule", 0, "match", "tool"), 3),
    ("dotted_key_prefix", "[[rule]]\nname='a'\nmatch.tool = 'x'\n", ("rule", 0, "match"), 3),
    (
        "quoted_keys",
        '[["rule"]]\n"name" = "a"\n[rule."match"]\n\'tool\' = "x"\n',
        ("rule", 0, "match", "tool"),
        4,
    ),
    ("comment_is_not_a_header", "# [[rule]]\n[[rule]]\nname='a'\n", ("rule", 0), 2),
    ("header_with_comment", "[[rule]]  # the first\nname='a'\n", ("rule", 0), 1),
    ("multiline_string_skipped", 'a = """\n[[rule]]\nname = "x"\n"""\n[[rule]]\n', ("rule", 0), 5),
    ("multiline_literal_skipped", "a = '''\n[[rule]]\n'''\n[[rule]]\n", ("rule", 0), 4),
    ("one_line_triple_quotes", 'a = """x"""\n[[rule]]\n', ("rule", 0), 2),
    ("crlf", "[[rule]]\r\nname = 'a'\r\n", ("rule", 0, "name"), 2),
    ("only_newline_ends_a_line", "a = 'x\x85y\u2028z\x0c'\n[[rule]]\n", ("rule", 0), 2),
]


@pytest.mark.parametrize(
    ("text", "path", "line"), [pytest.param(t, p, n, id=i) for i, t, p, n in LOCATE_CASES]
)
def test_locate_keys(text: str, path: tuple[str | int, ...], line: int) -> None:
    assert locate_keys(text)[path] == line


@pytest.mark.parametrize(
    ("path", "line"),
    [
        pytest.param(("rule", 0, "match", "tool"), 3, id="inline_table_field_to_its_key"),
        pytest.param(("rule", 0, "title"), 1, id="missing_key_to_its_rule"),
        pytest.param(("rule", 5), 0, id="unknown_rule"),
        pytest.param(("nothing",), 0, id="nothing"),
    ],
)
def test_line_of_falls_back_to_the_enclosing_key(path: tuple[str | int, ...], line: int) -> None:
    found = locate_keys("[[rule]]\nname = 'a'\nmatch = { tool = 'x' }\n")
    assert line_of(found, path) == line


# --- round trip -------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    """A TOML basic string (what TOML asks escaped: quote, backslash, control characters)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_texts = st.text(min_size=1, max_size=20).filter(str.strip)
# What a multi-line literal string can hold as it is: no quote, no control character but \n.
_MULTILINE_LITERAL = re.compile(r"[^'\x00-\x09\x0b-\x1f\x7f]*")
_titles = _texts | st.text(alphabet="ab [=]\n#", min_size=1, max_size=30).filter(str.strip)
_variable_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: (
        name
        not in {"seq", "priority", "category", "category_prefix", "name", "title", "code", "match"}
    )
)
_rule_specs = st.fixed_dictionaries(
    {
        "title": st.none() | _titles,
        "category": st.none() | _texts,
        "priority": st.none() | st.sampled_from(PRIORITIES),
        "variable": st.none() | st.tuples(_variable_names, _texts | st.integers(0, 10**6)),
        "literals": st.dictionaries(st.sampled_from(sorted(MATCH_FIELDS)), _texts, min_size=1),
    }
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(_texts, min_size=0, max_size=5, unique=True),
    specs=st.lists(_rule_specs, min_size=5, max_size=5),
    default_priority=st.sampled_from(PRIORITIES),
    multiline_titles=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_generated_rule_files_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    names: list[str],
    specs: list[dict[str, Any]],
    default_priority: str,
    multiline_titles: list[bool],
) -> None:
    lines = ["[defaults]", f'priority = "{default_priority}"']
    header_lines = []
    for name, spec, multiline in zip(names, specs, multiline_titles, strict=False):
        lines.append("")
        header_lines.append(sum(line.count("\n") + 1 for line in lines) + 1)
        lines += ["[[rule]]", f"name = {_toml_string(name)}"]
        title = spec["title"]
        if multiline and title is not None and _MULTILINE_LITERAL.fullmatch(title):
            # A multi-line literal: the text scan must skip its lines, as tomllib does.
            lines.append(f"title = '''\n{title}'''")
        elif title is not None:
            lines.append(f"title = {_toml_string(title)}")
        for key in ("category", "priority"):
            if spec[key] is not None:
                lines.append(f"{key} = {_toml_string(spec[key])}")
        if spec["variable"] is not None:
            variable, value = spec["variable"]
            lines.append(f'code = "{{{variable}}}-{{seq:03d}}"')
            rendered = value if isinstance(value, int) else _toml_string(value)
            lines.append(f"{variable} = {rendered}")
        lines.append("[rule.match]")
        for field, literal in spec["literals"].items():
            lines.append(f"{field} = {_toml_string(re.escape(literal))}")
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    rules = load_rules(path)

    assert [rule.name for rule in rules.rules] == names
    assert [rule.source_line for rule in rules.rules] == header_lines
    for rule, spec in zip(rules.rules, specs, strict=False):
        assert rule.title == spec["title"]
        assert rule.category == (spec["category"] or "uncategorized")
        assert rule.priority == (spec["priority"] or default_priority)
        assert {k: p.pattern for k, p in rule.patterns.items()} == {
            k: re.escape(v) for k, v in spec["literals"].items()
        }
        if spec["variable"] is not None:
            variable, value = spec["variable"]
            assert dict(rule.variables) == {variable: value}
            assert rules.format_code(rule, 1) == f"{value}-001"
        # A result carrying the literals matches the rule built from them.
        fields = {MATCH_FIELDS[k]: v for k, v in spec["literals"].items() if k != "status"}
        if "status" in spec["literals"]:
            continue  # status is parsed into PASS/FAIL/..., so arbitrary text cannot be one
        assert rule.matches(_result(**fields))
    assert len(rules.describe()) == len(names)
