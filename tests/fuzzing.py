"""Garbage and mutated documents for the importers and the fingerprint normaliser, shared by
the hypothesis tests (tests/ingest/test_fuzz_importers.py) and ``bench/fuzz.py``.

Every input is made from a ``random.Random``: hypothesis hands the tests one it shrinks, the
harness seeds its own and runs hundreds of thousands. Mutations start from the real sample
reports of tests/data, so that most inputs get deep into a parser before they go wrong.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testledger.ingest.base import ImportFormatError
from testledger.ingest.registry import parse_source

DATA = Path(__file__).parent / "data"

#: Tokens that have broken parsers: NULs, encodings no codec knows, entities, huge numbers,
#: byte order marks, values of the wrong JSON type.
TOKENS: tuple[bytes, ...] = (
    b"\x00",
    b"\\u0000",
    b"\\ud800",
    b"{}",
    b"[]",
    b"null",
    b"true",
    b'"',
    b"<",
    b">",
    b"&",
    b"&#0;",
    b"&#x110000;",
    b'encoding="NaN"',
    b"<?xml version='1.0' encoding='NaN'?>",
    b'<?xml version="1.0" encoding="utf-16"?>',
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"1e999",
    b"-1",
    b"NaN",
    b"Infinity",
    b"9" * 400,
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\x1f\x8b",
    b"\xc3\x28",
    b"\n",
    b"\r\n",
    b"]]>",
    b"<![CDATA[",
    b"2025-13-45T99:99:99Z",
)

#: Per importer: the format name, and the sample files or folders its inputs grow from.
SEEDS: dict[str, list[Path]] = {
    "junit": sorted((DATA / "junit").glob("*.xml")),
    "ctrf": sorted((DATA / "ctrf").glob("*.json")),
    "pytest-json": sorted((DATA / "pytest_json").glob("*.json")),
    "pytest-reportlog": sorted((DATA / "reportlog").glob("*.jsonl")),
    "allure": [DATA / "allure" / "pytest-rerun"],
    "exai": [
        DATA / "exai" / "simple_runner_results.json",
        DATA / "exai" / "suite" / "results" / "latest" / "test_results.json",
        DATA / "exai" / "suite" / "results" / "latest" / "summary.json",
        DATA / "exai" / "suite" / "results" / "latest" / "watcher_analysis.csv",
        DATA
        / "exai"
        / "suite"
        / "results"
        / "latest"
        / "watcher_observations"
        / "chat_basic_glm.json",
        DATA / "exai" / "suite" / "results" / "history" / "results_20251006_090000",
    ],
}


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 10**400])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, 1e-320])
    if kind == 4:
        return rng.choice(TOKENS).decode("latin-1")
    if kind == 5:
        return "".join(chr(rng.choice([0, 10, 65, 0x7F, 0xE9, 0xFFFD, 0x1F600])) for _ in range(5))
    if kind == 6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["tool", "variation", "status", "name", "duration", "message", "tests", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(3))}


def _mutate_json(rng: random.Random, value: Any) -> Any:
    """``value`` with one node somewhere inside replaced by random JSON."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutate_json(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate_json(rng, value[index]), *value[index + 1 :]]
    return _random_json(rng)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    size = len(data)
    at = rng.randrange(size + 1)
    kind = rng.randrange(6)
    if kind == 0:  # a token somewhere
        return data[:at] + rng.choice(TOKENS) + data[at:]
    if kind == 1:  # a token instead of a quoted value
        start = data.find(b'"', at)
        end = data.find(b'"', start + 1)
        if start >= 0 and end > start:
            return data[: start + 1] + rng.choice(TOKENS) + data[end:]
        return data + rng.choice(TOKENS)
    if kind == 2:  # truncated
        return data[:at]
    if kind == 3:  # a slice cut out
        return data[:at] + data[at + rng.randrange(1, 64) :]
    if kind == 4:  # a slice repeated
        return data[:at] + data[at : at + rng.randrange(1, 64)] * rng.randrange(2, 5) + data[at:]
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]  # one byte changed


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One mutated document: a few byte-level changes, or one structural change of the JSON
    (a lines file's lines each count), or plain garbage now and then."""
    if rng.random() < 0.03:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if rng.random() < 0.4:
        lines = data.split(b"\n")
        index = rng.randrange(len(lines))
        try:
            lines[index] = json.dumps(_mutate_json(rng, json.loads(lines[index]))).encode()
            return b"\n".join(lines)
        except (ValueError, RecursionError):
            pass
        try:
            return json.dumps(_mutate_json(rng, json.loads(data))).encode()
        except (ValueError, RecursionError):
            pass
    for _ in range(rng.randrange(1, 4)):
        data = _mutate_bytes(rng, data)
    return data


@dataclass(slots=True)
class Tally:
    ran: int = 0
    ours: int = 0
    crashes: list[str] = field(default_factory=list)
    slowest: float = 0.0


class Workspace:
    """A folder the inputs are written into: a sample file becomes ``input<suffix>``; a sample
    folder is copied once and one of its files replaced by the mutated input (and put back)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._copies: dict[Path, Path] = {}

    def _copy(self, folder: Path) -> Path:
        if folder not in self._copies:
            target = self.root / f"copy{len(self._copies)}" / folder.name
            shutil.copytree(folder, target)
            self._copies[folder] = target
        return self._copies[folder]

    def inputs(self, rng: random.Random, seed: Path) -> Iterator[tuple[Path, bytes]]:
        """Writes one input made from ``seed``; yields (what to parse, the bytes written)."""
        if seed.is_file():
            data = mutate(rng, seed.read_bytes())
            path = self.root / f"input{''.join(seed.suffixes)}"
            path.write_bytes(data)
            yield path, data
            return
        folder = self._copy(seed)
        victim = rng.choice(sorted(p for p in folder.rglob("*") if p.is_file()))
        original = victim.read_bytes()
        data = mutate(rng, original)
        victim.write_bytes(data)
        try:
            yield folder, data
        finally:
            victim.write_bytes(original)


def parse_all(path: Path, format_name: str | None) -> None:
    """Parse ``path`` as an import does: every run of it, every result."""
    for parsed in parse_source(path, format_name):
        for _ in parsed.results:
            pass


def run_one(
    workspace: Workspace, rng: random.Random, format_name: str, tally: Tally
) -> tuple[bytes, BaseException | None, float]:
    """Parse one input made for ``format_name`` (the format named, or detected one time in
    four); the tally counts it. Returns the input, any error that is not ours, and the time."""
    seed = rng.choice(SEEDS[format_name])
    named: str | None = format_name if rng.random() < 0.75 else None
    for path, data in workspace.inputs(rng, seed):
        started = time.perf_counter()
        crash: BaseException | None = None
        try:
            parse_all(path, named)
        except ImportFormatError:
            tally.ours += 1
        except Exception as exc:
            crash = exc
        elapsed = time.perf_counter() - started
        tally.ran += 1
        tally.slowest = max(tally.slowest, elapsed)
        if crash is not None:
            tally.crashes.append(f"{type(crash).__name__}: {crash} <- {data[:120]!r}")
        return data, crash, elapsed
    raise AssertionError("no input written")  # pragma: no cover


def random_message(rng: random.Random) -> str:
    """A failure message for the fingerprint normaliser: a mutated realistic one or garbage."""
    base = rng.choice(
        [
            "AssertionError: assert 1 == 2\n  - expected\n  + actual",
            "TimeoutError: timed out after 30.5s connecting to 127.0.0.1:5432",
            "KeyError: 'user_8f14e45fceea167a5a36dedd4bea2543'",
            "File /tmp/pytest-of-root/pytest-12/test_x0/a.py, line 3, at 0x7f3a2b1c4d50",
            "ValueError: invalid literal for int() with base 10: '2025-10-07T13:47:07Z'",
        ]
    ).encode()
    data = mutate(rng, base * rng.randrange(1, 4))
    if rng.random() < 0.01:
        data = data * rng.randrange(100, 2000)  # long ones too
    return data.decode("utf-8", errors="replace")


NormaliserCheck = Callable[[str], str]
