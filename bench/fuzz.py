"""Fuzzing harness: generated garbage and mutated reports through every importer, and mutated
failure messages through the fingerprint normaliser.

    python bench/fuzz.py [--n N] [--seed S] [--only NAME ...]

For each importer (the import's entry point, ``parse_source``, every result consumed) and for
``normalize_message``, runs N generated inputs (default 100,000; the inputs come from
tests/fuzzing.py) and prints how many ran, how many ended as testledger's own ImportFormatError,
how many crashed with anything else and the slowest input's time; an input over 1 s is made
again and timed three more times ("again": the least), since on a busy machine one slow figure
can be the scheduler's. The goal: no crash, and no input slower than 1 s (again). The exit
status is 1 when the goal is not met (a crash is a bug), and the first crashes are printed with
the input that caused them. Progress goes to stderr every 10,000 inputs.
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


#: An input slower than the limit is timed again this many times (the least counts): on a busy
#: machine one slow figure can be the scheduler's, not the parser's.
RETIMES = 3
#: Progress on stderr every this many inputs.
PROGRESS_EVERY = 10_000


def _progress(name: str, tally: Tally) -> None:
    if tally.ran % PROGRESS_EVERY == 0:
        print(
            f"  {name}: {tally.ran:,} ran, {len(tally.crashes)} crashed, "
            f"slowest {tally.slowest:.3f}s",
            file=sys.stderr,
            flush=True,
        )


def _fuzz_importer(name: str, count: int, seed: int) -> tuple[Tally, float]:
    """The tally, and the slowest input's time timed again (its least of RETIMES) when it
    was over the limit (else its first time)."""
    rng = random.Random(f"{seed}-{name}")
    tally = Tally()
    slowest_state = rng.getstate()
    with tempfile.TemporaryDirectory(prefix="testledger-fuzz-") as tmp:
        workspace = Workspace(Path(tmp))
        for _ in range(count):
            state = rng.getstate()
            before = tally.slowest
            run_one(workspace, rng, name, tally)
            if tally.slowest > before:
                slowest_state = state
            _progress(name, tally)
        if tally.slowest < LIMIT_SECS:
            return tally, tally.slowest
        again = []
        for _ in range(RETIMES):
            rng.setstate(slowest_state)  # the same input made again
            once = Tally()
            run_one(workspace, rng, name, once)
            again.append(once.slowest)
    return tally, min(again)


def _normalise_timed(message: str, tally: Tally) -> float:
    started = time.perf_counter()
    try:
        normalize_message(message)
    except Exception as exc:
        tally.crashes.append(f"{type(exc).__name__}: {exc} <- {message[:120]!r}")
    return time.perf_counter() - started


def _fuzz_normaliser(count: int, seed: int) -> tuple[Tally, float]:
    rng = random.Random(f"{seed}-{NORMALISER}")
    tally = Tally()
    slowest_message = ""
    for _ in range(count):
        message = random_message(rng)
        elapsed = _normalise_timed(message, tally)
        if elapsed > tally.slowest:
            tally.slowest, slowest_message = elapsed, message
        tally.ran += 1
        _progress(NORMALISER, tally)
    if tally.slowest < LIMIT_SECS:
        return tally, tally.slowest
    return tally, min(_normalise_timed(slowest_message, Tally()) for _ in range(RETIMES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help=f"targets: {', '.join([*SEEDS, NORMALISER])}")
    args = parser.parse_args()
    targets = args.only or [*SEEDS, NORMALISER]
    met = True
    print(f"{'target':<20} {'ran':>9} {'ours':>9} {'crashed':>8} {'slowest':>9} {'again':>8}  time")
    for name in targets:
        started = time.perf_counter()
        if name == NORMALISER:
            tally, again = _fuzz_normaliser(args.n, args.seed)
        else:
            tally, again = _fuzz_importer(name, args.n, args.seed)
        took = time.perf_counter() - started
        print(
            f"{name:<20} {tally.ran:>9,} {tally.ours:>9,} {len(tally.crashes):>8,} "
            f"{tally.slowest:>8.3f}s {again:>7.3f}s  {took:.0f}s",
            flush=True,
        )
        for crash in tally.crashes[:5]:
            print(f"  crash: {crash}")
        met = met and not tally.crashes and again < LIMIT_SECS
    print(f"goal (0 crashes, every input < {LIMIT_SECS:.0f} s): {'MET' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
