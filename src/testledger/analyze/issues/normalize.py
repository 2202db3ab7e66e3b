"""Message normalisation: replace the volatile parts of a failure message with placeholders.

Two runs of the same broken test rarely print the same message: ports, temp directories,
addresses, timestamps, durations and generated ids change every time. Grouping failures into
issues needs those parts gone, so ``normalize_message`` rewrites them to placeholders such as
``<num>``, ``<uuid>`` or ``<tmp_path>`` and drops pytest's assertion-diff detail lines.

The design follows Sentry's ``grouping/parameterization.py``: an ORDERED table of named rules,
joined at import time into ONE alternation of named groups, so that normalising a message is a
single ``re.sub`` pass whatever the number of rules (after a line filter that drops pytest's
diff lines). Two consequences of the single pass matter when reading the table:

* The leftmost match wins. Rule order only breaks ties between rules that can match at the
  SAME position (a UUID and a hex number and an integer all start at the same digit), so each
  rule's comment says which later rules it must precede.
* Nothing is normalised twice: the text inside a match is never looked at again, which is why
  a URL or a temp path collapses to one placeholder rather than to a soup of ``<num>``.

Placeholders are inert: nothing matches inside one, nothing starts right after its '>', and
no rule's end may touch a following '<'. So a second pass finds nothing the first one did not:
``normalize_message`` is idempotent, which the property tests check.

Speed is the other constraint (100,000 failures/s is the goal): see the notes above the table
for how the patterns are shaped so CPython's regex engine can skip most characters cheaply.

Changing any rule here changes the hashes of fingerprint algorithm version 1, which must never
change: a changed rule belongs to a new algorithm version, version 1 keeping the rules it has
(see ``fingerprint.py``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

__all__ = [
    "MAX_MESSAGE_CHARS",
    "NORMALIZATION_RULES",
    "NormalizationRule",
    "normalize_first_lines",
    "normalize_message",
    "normalize_with_trace",
]

#: Only this much of a message is looked at: the start of a message says what went wrong, and
#: bounding it keeps a 1 MB repr in an assertion from costing a second.
MAX_MESSAGE_CHARS = 2048


@dataclass(frozen=True, slots=True)
class NormalizationRule:
    """One normalisation rule: regex alternatives (verbose syntax) and what matches become.

    Each alternative is ``(kind, pattern)``: ``kind`` says what its first character is
    (``digit``, ``letter``, ``quote`` or ``punct``) so the combined regex can dispatch on it.
    ``replacement`` is the placeholder; ``""`` deletes, ``keep=True`` marks a rule that matches
    only to shield text from later rules, ``line=True`` a rule that drops whole lines (it runs
    first, as a line filter, and its pattern is matched at the start of each line).
    """

    name: str
    alternatives: tuple[tuple[str, str], ...]
    replacement: str
    comment: str
    keep: bool = False
    line: bool = False

    @property
    def pattern(self) -> str:
        """The rule on its own, as one verbose-syntax regex."""
        return "|".join(f"(?:{pattern})" for _, pattern in self.alternatives)


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_MONTH3 = r"(?<=Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"  # fixed width: lookbehind-able
_WEEKDAY3 = r"(?<=Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_CLOCK = r"[0-2]\d:[0-5]\d(?::[0-5]\d)?"
_HEX4 = r"[0-9a-fA-F]{1,4}"
_IPV6_REST = (
    r"""[0-9a-fA-F]{0,3}:
    (?:(?:"""
    + _HEX4
    + r""":){6}"""
    + _HEX4
    + r"""|(?:"""
    + _HEX4
    + r""":){0,5}(?::"""
    + _HEX4
    + r"""){1,6})
    (?![\w:])"""
)
_HOST_REST = r"""[\w-]*(?:\.[\w-]+)*\.(?!(?:py|pyi|pyx|js|mjs|cjs|ts|tsx|jsx|java|kt|go|rb|rs|c|cc|
    cpp|h|hpp|cs|php|swift|scala|json|ya?ml|toml|ini|cfg|txt|md|html?|xml|sql|sh|log|csv)\b)
    [A-Za-z][\w-]*:\d{1,5}\b(?!\.\d)"""
_UUID_REST = r"""[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"""

# How the patterns are written, for speed (CPython's regex engine has no other fast path):
# * Every alternative starts by consuming one character from a class, with the "not inside a
#   word" check right after it as a lookbehind over that character: ``\d(?<![\w.].)`` is
#   ``(?<![\w.])\d``. The engine skips an alternative whose first class fails almost for free.
# * The combined regex consumes the character BEFORE a match (any non-word character except
#   '>') and gives it back in the replacement. A regex whose first step is a character class
#   gets a C-speed scan to the next candidate, so the letters of plain words cost nearly
#   nothing. '>' is excluded because placeholders end with it: text after a placeholder is
#   never matched, on the first pass or on a second one (that keeps normalisation idempotent).
# * Alternatives are grouped by ``kind`` behind their first character class, consumed once
#   for the group (see ``_KIND_FIRST``); a letter-led alternative is only tried on a word
#   holding a digit, '@', '\', '[' or a ':' that goes on (or a month name): plain words fail
#   one cheap check. Digit-led ones are dispatched on what follows the digits
#   (``_DIGIT_GATES``), so a plain number goes straight to 'num'.
# * A gate checks the character right after a run, and that character is never one of the
#   run's own: backtracking into the run cannot make a failing gate pass, so '12345' does not
#   pass as '1234' + '5'. The runs are possessive ('*+') where Python has them (3.11+): the
#   same answers, without the futile backtracking (~1 µs a message).

#: The ordered rule table. Order matters only between rules that can match at the same start.
NORMALIZATION_RULES: tuple[NormalizationRule, ...] = (
    NormalizationRule(
        "pytest_diff",
        (
            (
                "line",
                r"""[ \t]*(?:E[ \t]+)?
                (?:[-+?][ \t]|Full\ diff:|At\ index\ \d+\ diff:|Use\ -v+\ to\ get[ ]
                  |Omitting\ \d+\ identical\ items|Differing\ items:|(?:Left|Right)\ contains[ ]
                  |Extra\ items\ in\ the\ |where\ .*=)""",
            ),
        ),
        "",
        "pytest's assertion diff lines (E   - / E   + / E   ?, 'Full diff:', 'where 3 = len(x)')"
        " repeat the operands in detail; the 'assert x == y' line keeps the shape. A LINE rule:"
        " whole matching lines go before the token rules run (so '- 5' is not '- <num>').",
        line=True,
    ),
    NormalizationRule(
        "url",
        (("letter", r"""[A-Za-z](?<![\w+.-].)[A-Za-z0-9+.-]{0,30}://[^\s'"<>]+"""),),
        "<url>",
        "A URL holds a host, a port, a path and ids: one placeholder for all of it, so it must"
        " precede email, host_port, ip and num.",
    ),
    NormalizationRule(
        "email",
        (
            ("letter", r"""[A-Za-z](?<![\w.+-].)[\w.+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b"""),
            ("digit", r"""\d(?<![\w.+-].)[\w.+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b"""),
        ),
        "<email>",
        "Before host_port and num: the domain part looks like a host name.",
    ),
    NormalizationRule(
        "tmp_path",
        (
            (
                "punct",
                r"""/(?<![\w./\\]/)(?:private/)?(?:tmp|var/folders|var/tmp|dev/shm)/[^\s'"():,]*""",
            ),
            (
                "letter",
                r"""[A-Za-z](?<!\w.):\\\\?Users\\\\?[^\\\s]+\\\\?AppData\\\\?Local\\\\?Temp
                    (?:\\[^\s'"():,]*)?""",
            ),
        ),
        "<tmp_path>",
        "Temp directories (pytest's tmp_path, macOS /var/folders, Windows AppData\\Local\\Temp)"
        " differ every run and hold numbered dirs: before uuid/hex/num so the whole path goes.",
    ),
    NormalizationRule(
        "uuid",
        (
            ("digit", r"\d(?<!\w.)" + _UUID_REST),
            ("letter", r"[a-fA-F](?<!\w.)" + _UUID_REST),
        ),
        "<uuid>",
        "Before hex and num: a UUID starts with 8 hex digits, which may all be decimal.",
    ),
    NormalizationRule(
        "timestamp",
        (
            (
                "digit",
                r"""\d(?<!\w.)\d{3}-[01]\d-[0-3]\d[T\ ][0-2]\d:[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?
                    (?:\ ?(?:Z|UTC|[+-][0-2]\d:?[0-5]\d))?(?!\w)""",
            ),
            (
                "digit",
                r"""\d(?<!\w.)\d?\ """
                + _MONTH
                + r"""\ \d{4}\ """
                + _CLOCK
                + r"""
                    (?:\ (?:GMT|UTC|[+-]\d{4}))?(?!\w)""",
            ),
            (
                "digit",
                r"""\d(?<!\w.)\d/"""
                + _MONTH
                + r"""/\d{4}:[0-2]\d:[0-5]\d:[0-5]\d
                    (?:\ [+-]\d{4})?(?!\w)""",
            ),
            (
                "letter",
                r"""[A-Z](?<!\w.)[a-z]{2}
                    (?:"""
                + _WEEKDAY3
                + r""",?\ (?:\d{1,2}\ """
                + _MONTH
                + r"""\ \d{4}\ """
                + _CLOCK
                + r"""(?:\ (?:GMT|UTC|[+-]\d{4}))?
                        |"""
                + _MONTH
                + r"""\ +\d{1,2}\ """
                + _CLOCK
                + r"""(?:\ \d{4})?)
                      |"""
                + _MONTH3
                + r"""\ +\d{1,2}\ """
                + _CLOCK
                + r"""(?:\ \d{4})?
                    )(?!\w)""",
            ),
        ),
        "<timestamp>",
        "ISO 8601, RFC 2822 ('Mon, 05 Jan 2024 10:00:00 GMT'), ctime/syslog ('Jan  5 10:00:00')"
        " and Apache ('05/Jan/2024:10:00:00 +0000') times. Before date, time and num, which"
        " would each take a piece of it.",
    ),
    NormalizationRule(
        "date",
        (
            (
                "digit",
                r"""\d(?<![\w/.-].)(?:\d{3}-[01]\d-[0-3]\d|\d{3}/[01]\d/[0-3]\d|\d?/\d{1,2}/\d{4})
                    (?![\w/-]|\.\d)""",
            ),
        ),
        "<date>",
        "Bare dates; after timestamp (a date is a timestamp's prefix), before num.",
    ),
    NormalizationRule(
        "time",
        (("digit", r"""\d(?<![\w:.].)\d?:[0-5]\d:[0-5]\d(?:[.,]\d+)?(?![\w:])"""),),
        "<time>",
        "Clock times '10:04:59.123'. Before host_port/ip (colons) and num.",
    ),
    NormalizationRule(
        "host_port",
        (
            ("letter", r"""l(?<![\w.-]l)ocalhost:\d{1,5}\b(?!\.\d)"""),
            ("digit", r"""\d(?<![\w.-].)\d{0,2}(?:\.\d{1,3}){3}:\d{1,5}\b(?!\.\d)"""),
            ("letter", r"""[A-Za-z](?<![\w.-].)""" + _HOST_REST),
            ("digit", r"""\d(?<![\w.-].)""" + _HOST_REST),
        ),
        "<host:port>",
        "'localhost:54321', '127.0.0.1:8080', 'db.example.com:5432': test servers get random"
        " ports. Before ip and num. Dotted names ending in a source extension ('foo.py:12')"
        " are file:line, not host:port.",
    ),
    NormalizationRule(
        "ip",
        (
            ("digit", r"""\d(?<![\w.].)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)"""),
            ("digit", r"""\d(?<![\w:].)""" + _IPV6_REST),
            ("letter", r"""[a-fA-F](?<![\w:].)""" + _IPV6_REST),
            ("punct", r""":(?<![\w:]:):""" + _HEX4 + r"""(?::""" + _HEX4 + r"""){0,6}(?![\w:])"""),
        ),
        "<ip>",
        "IPv4 and IPv6 addresses. Before hex (IPv6 groups are hex) and num (IPv4 is digits).",
    ),
    NormalizationRule(
        "hex",
        (
            ("digit", r"""0(?<!\w0)[xX][0-9a-fA-F]+\b"""),
            ("digit", r"""\d(?<!\w.)(?=\d*[a-f])[0-9a-f]{6,}\b"""),
            ("letter", r"""[a-f](?<!\w.)(?=[a-f]*\d)[0-9a-f]{6,}\b"""),
            ("digit", r"""\d(?<!\w.)(?=\d*[A-F])[0-9A-F]{7,}\b"""),
            ("letter", r"""[A-F](?<!\w.)(?=[A-F]*\d)[0-9A-F]{7,}\b"""),
        ),
        "<hex>",
        "Addresses ('0x7f3a2c'), object ids and git shas. Bare hex needs a digit and a letter"
        " (all-letter words stay; all-digit runs are num), one case, 7+ chars (8+ upper case)."
        " Before num, which would take the '0' of '0x7f'.",
    ),
    NormalizationRule(
        "size",
        (("digit", r"""\d(?<![\w.].)\d*(?:\.\d+)?\ ?(?:[KMGTPE]i?B|[kmgtpe]i?b|bytes?|B)\b"""),),
        "<size>",
        "Memory and file sizes ('12.5 MB', '1024KiB', '512 bytes'). Before duration and num.",
    ),
    NormalizationRule(
        "duration",
        (
            (
                "digit",
                r"""\d(?<![\w.].)\d*(?:\.\d+)?(?:[eE]-?\d+)?\ ?
                    (?:ns|us|µs|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b""",
            ),
        ),
        "<duration>",
        "'1.5s', '250ms', '3 minutes': timeouts and elapsed times. Before num.",
    ),
    NormalizationRule(
        "port",
        (("digit", r"""\d(?<=\bport[\ =:]\d)\d{0,4}\b"""),),
        "<port>",
        "'port 54321' / 'port=5432' without a host. Before num.",
    ),
    NormalizationRule(
        "quoted_identifier",
        (
            ("quote", r"""'(?<!\w')[A-Za-z_][A-Za-z_.]{0,59}'(?![\w<])"""),
            ("quote", r""""(?<!\w")[A-Za-z_][A-Za-z_.]{0,59}"(?![\w<])"""),
        ),
        "(kept)",
        "A quoted identifier without digits ('NoneType', 'user_id', 'os.path') names code, not"
        " data: kept, so AttributeErrors on different attributes stay different issues. It"
        " matches only to shield the text from 'quoted', so it must precede it.",
        keep=True,
    ),
    NormalizationRule(
        "quoted",
        (
            ("quote", r"""'(?<!\w')[^'\n<>]+'(?![\w<])"""),
            ("quote", r""""(?<!\w")[^"\n<>]+"(?![\w<])"""),
        ),
        "<quoted>",
        "Other quoted values are data (keys, inputs, file names). Before param and num. The"
        " no-word-before guard keeps apostrophes (\"can't ... 'x'\") from opening a quote.",
    ),
    NormalizationRule(
        "param",
        (("letter", r"""[tT](?<![\w.].)est\w*\[[^\]\n]+\]"""),),
        "test_name[<param>]",
        "Parametrisation ids: 'test_foo[case-3-abc]' becomes 'test_foo[<param>]'. Before num.",
    ),
    NormalizationRule(
        "num",
        (
            ("punct", r"""-(?<![\w.]-)\d+(?:\.\d+)*(?:[eE][+-]?\d+)?(?!\w|\.\w)"""),
            ("digit", r"""\d(?<![\w.].)\d*(?:\.\d+)*(?:[eE][+-]?\d+)?(?!\w|\.\w)"""),
        ),
        "<num>",
        "Last, the catch-all: ints, floats, negatives, 1e-05, versions (3.11.7). Digits inside"
        " identifiers ('test_foo0', 'gw3') stay: they are names.",
    ),
)

# Each kind of alternative sits behind the class of its first character, which the combined
# regex consumes once for all of them (the engine skips a branch whose first step is a failing
# class almost for free; a lookahead it would have to run). Each alternative then checks its
# own first class as a one-character lookbehind. What follows the class is the kind's gate,
# run once: a letter-led construct always holds a digit, '@', '\\', '[', or a ':' that goes
# on ('://', ':5432', 'C:\\', 'fe80::1') in its first word, or is a month/weekday name, so
# plain words, and words that merely end with a colon ('directory:'), fail one cheap check.
_P = "+" if sys.version_info >= (3, 11) else ""  # possessive, where the engine has it
_KIND_FIRST = {
    "digit": r"\d",
    "letter": r"[A-Za-z]",
    "quote": r"['\"]",
    "punct": r"[/:-]",
}
_KIND_GATES = {
    "digit": "",
    # '[\w.+-]*' then the mark, without retrying every split: the mark cannot be one of the
    # run's own characters, so only the end of the run of non-digit word characters and '.+-'
    # can hold it.
    "letter": rf"""(?=[^\W\d]*{_P}(?:[.+-][^\W\d]*{_P})*{_P}(?:[\d@\\\[]|:[\d/\\:a-fA-F])
        |(?<=[A-Z])[a-z]{{2}},?\ )""",
    "quote": "",
    "punct": "",
}

# Digit-led alternatives other than a plain number are dispatched on what follows the leading
# digits (Sentry's trick of one branch per shape, so '22.77s' tries 6 alternatives, not 17).
# Each gate looks at the character after the digit run, which is never a digit (so
# backtracking into the run cannot make a gate pass). The gates are disjoint, and each
# alternative is listed under every gate its matches can pass, in table order: whichever gate
# passes, the first alternative that matches is the one the table order would pick. A plain
# number ends at a space, a closer or the end: it passes no gate and goes straight to 'port'
# and 'num'.
_DIGIT_GATES = {
    "dot": rf"(?=\d*{_P}\.)",
    "other": rf"(?=\d*{_P}[^\W\d]|\d*{_P}[+@])",  # a letter, '_', '+' or '@'
    "colon": rf"(?=\d*{_P}:)",
    "space": rf"(?=\d*{_P}\ [KMGTPEkmgtpebBnuµsmhJFMASOND])",  # '12.5 MB', '3 min', '05 Jan'
    "dash": rf"(?=\d*{_P}-)",
    "slash": rf"(?=\d*{_P}/)",
}
# Alternative (rule, index in rule.alternatives) -> the digit gates its matches can pass.
_DIGIT_ALTERNATIVE_GATES: dict[tuple[str, int], tuple[str, ...]] = {
    ("email", 1): ("dot", "other", "dash"),  # [\w.+-]*@
    ("uuid", 0): ("other", "dash"),  # 8 hex digits then '-'
    ("timestamp", 0): ("dash",),  # 2024-01-05T...
    ("timestamp", 1): ("space",),  # 05 Jan 2024 ...
    ("timestamp", 2): ("slash",),  # 05/Jan/2024:...
    ("date", 0): ("dash", "slash"),
    ("time", 0): ("colon",),
    ("host_port", 1): ("dot",),  # 127.0.0.1:8080
    ("host_port", 3): ("dot", "other", "dash"),  # 3rd-host.example.com:80
    ("ip", 0): ("dot",),
    ("ip", 1): ("colon", "other"),  # 2001:db8::1, 20af::1
    ("hex", 0): ("other",),  # 0x7f
    ("hex", 1): ("other",),
    ("hex", 3): ("other",),
    ("size", 0): ("dot", "other", "space"),
    ("duration", 0): ("dot", "other", "space"),  # 1.5s, 1e-05s, 3 minutes
}
# All the digit gates at once: a plain number (the common case, '3 of 5', '[1, 2]') ends at a
# space, a closer or the end, and fails this one check instead of each gate.
_SPECIAL_NUMBER = rf"(?=\d*{_P}(?:[^\d\s,;)\]}}'\"]|\ [KMGTPEkmgtpebBnuµsmhJFMASOND]))"
_PLAIN_NUMBER_RULES = frozenset({"port", "num"})

_LINE_RULES = tuple(rule for rule in NORMALIZATION_RULES if rule.line)
_TOKEN_RULES = tuple(rule for rule in NORMALIZATION_RULES if not rule.line)
_DIFF_LINE = re.compile(
    "|".join(f"(?:{pattern})" for rule in _LINE_RULES for _, pattern in rule.alternatives),
    re.VERBOSE,
)


def _split_first_class(pattern: str) -> tuple[str, str]:
    """``('[A-Za-z]', rest)`` for an alternative starting with a class, ``\\d`` or a literal."""
    if pattern.startswith("\\"):
        size = 2
    elif pattern.startswith("["):
        size = pattern.index("]", 2) + 1
    else:
        size = 1
    return pattern[:size], pattern[size:]


def _build_combined() -> tuple[re.Pattern[str], dict[str, NormalizationRule]]:
    # Each alternative is followed by an EMPTY named group: ``match.lastgroup`` (the last group
    # closed) names the alternative. An alternative listed under several digit gates gets one
    # group per gate (names must be unique).
    by_group: dict[str, NormalizationRule] = {}
    gated: dict[str, list[str]] = {gate: [] for gate in _DIGIT_GATES}
    branches: list[str] = []
    for kind, gate in _KIND_GATES.items():
        alternatives: list[str] = []
        for rule in _TOKEN_RULES:  # table order, within each kind
            for index, (alt_kind, pattern) in enumerate(rule.alternatives):
                if alt_kind != kind:
                    continue
                first, rest = _split_first_class(pattern)
                alternative = f"(?<={first}){rest}" if first != _KIND_FIRST[kind] else rest
                if kind == "digit" and rule.name not in _PLAIN_NUMBER_RULES:
                    for digit_gate in _DIGIT_ALTERNATIVE_GATES[rule.name, index]:
                        group = f"{rule.name}__{index}__{digit_gate}"
                        by_group[group] = rule
                        gated[digit_gate].append(f"(?:{alternative})(?P<{group}>)")
                    continue
                group = f"{rule.name}__{index}"
                by_group[group] = rule
                alternatives.append(f"(?:{alternative})(?P<{group}>)")
        if kind == "digit":
            # 'port' and 'num' come last in the table, so trying them after the gated
            # alternatives keeps the table's order.
            dispatch = [
                _DIGIT_GATES[name] + "(?:" + "|".join(alts) + ")" for name, alts in gated.items()
            ]
            alternatives = [_SPECIAL_NUMBER + "(?:" + "|".join(dispatch) + ")", *alternatives]
        branches.append(_KIND_FIRST[kind] + gate + "(?:" + "|".join(alternatives) + ")")
    combined = r"[^\w>](?:" + "|".join(branches) + ")"
    return re.compile(combined, re.VERBOSE), by_group


_COMBINED, _RULE_OF_GROUP = _build_combined()
# Group -> placeholder for plain rules; the rest (keep, param) are computed from the match.
_PLAIN: dict[str, str] = {
    group: rule.replacement
    for group, rule in _RULE_OF_GROUP.items()
    if not rule.keep and rule.name != "param"
}
# The same by group number: ``match.lastindex`` is cheaper than ``match.lastgroup`` (a name
# lookup) and this runs once per placeholder, the hot path's only Python callback.
_PLAIN_BY_INDEX: list[str | None] = [None] * (_COMBINED.groups + 1)
for _group, _index in _COMBINED.groupindex.items():
    _PLAIN_BY_INDEX[_index] = _PLAIN.get(_group)


def _substitute(match: re.Match[str]) -> str:
    plain = _PLAIN_BY_INDEX[match.lastindex]  # type: ignore[index]
    if plain is not None:
        # give back the consumed character before the match
        return match.string[match.start()] + plain
    text = match.group()
    if _RULE_OF_GROUP[match.lastgroup].keep:  # type: ignore[index]
        return text
    return text[: text.index("[")] + "[<param>]"


def _drop_diff_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if _DIFF_LINE.match(line) is None)


def normalize_message(text: str) -> str:
    """Replace the volatile parts of ``text`` (first ``MAX_MESSAGE_CHARS``) by placeholders."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS]
    if "\n" in text:
        text = _drop_diff_lines(text)
    # The leading space is the "character before" a match at the very start of the text.
    return _COMBINED.sub(_substitute, " " + text).strip()


def normalize_first_lines(text: str, max_lines: int) -> list[str]:
    """The first ``max_lines`` non-blank lines of ``normalize_message(text)``, each stripped,
    without normalising the lines after them (no rule spans a newline, and no rule but the
    line rule can blank a line, so the result is the same)."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS]
    if "\n" in text:
        kept: list[str] = []
        for line in text.split("\n"):
            if line.strip() and _DIFF_LINE.match(line) is None:
                kept.append(line)
                if len(kept) == max_lines:
                    break
        text = "\n".join(kept)
    normalized = _COMBINED.sub(_substitute, " " + text)
    if "\n" not in normalized:
        normalized = normalized.strip()
        return [normalized] if normalized else []
    return [line.strip() for line in normalized.split("\n")]


def normalize_with_trace(text: str) -> tuple[str, list[str]]:
    """``normalize_message`` that also returns the names of the rules that fired, in order of
    first firing (for ``testledger explain`` and the tests). Slower: not for the hot path."""
    fired: list[str] = []

    def record(match: re.Match[str]) -> str:
        name = _RULE_OF_GROUP[match.lastgroup].name  # type: ignore[index]
        if name not in fired:
            fired.append(name)
        return _substitute(match)

    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS]
    if "\n" in text:
        dropped = _drop_diff_lines(text)
        if dropped != text:
            fired.extend(rule.name for rule in _LINE_RULES)
            text = dropped
    return _COMBINED.sub(record, " " + text).strip(), fired
