"""Fuzzing harness: generated garbage and mutated reports through every importer, and mutated
failure messages through the fingerprint normaliser.

    python bench/fuzz.py [--n N] [--seed S] [--only NAME ...]

For each importer (the import's entry point, ``parse_source``, every result consumed) and for
``normalize_message``, runs N generated inputs (default 100,000; the inputs come from
tests/fuzzing.py) and prints how many ran, how many ended as testledger's own ImportFormatError,
how many crashed with anything else and the slowest input's time. The goal: no crash, and no
input slower than 1 s. The exit status is 1 when the goal is not met (a crash is a bug), and the
first crashes are printed with the input that caused them.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzzing import SEEDS, Tally, Workspace, random_message, run_one

from testledger.analyze.issues.normalize import normalize_message

LIMIT_SECS = 1.0
NORMALISER = "normalize_message"


def _fuzz_importer(name: str, count: int, seed: int) -> Tally:
    rng = random.Random(f"{seed}-{name}")
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="testledger-fuzz-") as tmp:
        workspace = Workspace(Path(tmp))
        for _ in range(count):
            run_one(workspace, rng, name, tally)
    return tally


def _fuzz_normaliser(count: int, seed: int) -> Tally:
    rng = random.Random(f"{seed}-{NORMALISER}")
    tally = Tally()
    for _ in range(count):
        message = random_message(rng)
        started = time.perf_counter()
        try:
            normalize_message(message)
        except Exception as exc:
            tally.crashes.append(f"{type(exc).__name__}: {exc} <- {message[:120]!r}")
        tally.slowest = max(tally.slowest, time.perf_counter() - started)
        tally.ran += 1
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help=f"targets: {', '.join([*SEEDS, NORMALISER])}")
    args = parser.parse_args()
    targets = args.only or [*SEEDS, NORMALISER]
    met = True
    print(f"{'target':<20} {'ran':>9} {'ours':>9} {'crashed':>8} {'slowest':>9}  time")
    for name in targets:
        started = time.perf_counter()
        if name == NORMALISER:
            tally = _fuzz_normaliser(args.n, args.seed)
        else:
            tally = _fuzz_importer(name, args.n, args.seed)
        took = time.perf_counter() - started
        print(
            f"{name:<20} {tally.ran:>9,} {tally.ours:>9,} {len(tally.crashes):>8,} "
            f"{tally.slowest:>8.3f}s  {took:.0f}s",
            flush=True,
        )
        for crash in tally.crashes[:5]:
            print(f"  crash: {crash}")
        met = met and not tally.crashes and tally.slowest < LIMIT_SECS
    print(f"goal (0 crashes, every input < {LIMIT_SECS:.0f} s): {'MET' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
