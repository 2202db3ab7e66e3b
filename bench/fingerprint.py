"""Benchmark: failure fingerprinting throughput, against a naive no-normalisation peer.

    python bench/fingerprint.py [--n N] [--seed S] [--version V]

Generates N realistic, varied failing results (AssertionError diffs, timeouts with durations
and ports, KeyErrors with generated keys, tracebacks with temp paths and hex addresses),
fingerprints them all (with the current algorithm, or ``--version``; version 1 is measured
beside it) and prints failures/s, the ratio against the peer measured in the same
run (``sha1(error_type + message)``, no normalisation: what normalising costs), and how many
distinct groups each produces. Benchmarks report; they do not gate: the goal line says MET or
NOT MET and the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
import uuid

from testledger.analyze.issues.fingerprint import fingerprint
from testledger.model import Status, TestResult

GOAL = 100_000

_LIB_FRAMES = (
    '  File "/usr/lib/python3.11/site-packages/_pytest/python.py", line 194, in '
    "pytest_pyfunc_call\n    result = testfunction(**testargs)\n"
    '  File "/usr/lib/python3.11/site-packages/pluggy/_callers.py", line 102, in _multicall\n'
    "    res = hook_impl.function(*args)\n"
)


def _app_frames(rng: random.Random, module: str, funcs: list[str]) -> str:
    root = rng.choice(["/home/ci/work/app", "/builds/team/app", "/Users/dev/src/app"])
    out = []
    for depth, func in enumerate(funcs):
        # A bug fails at the same lines every time: derive them from the code, not the rng.
        line = 10 + (sum(map(ord, module + func)) * (depth + 7)) % 390
        out.append(
            f'  File "{root}/{module}.py", line {line}, in {func}\n'
            f"    value = {func}_helper(client, payload, timeout=timeout)  # step {depth}\n"
        )
    return "".join(out)


def make_failures(n: int, seed: int) -> list[TestResult]:
    rng = random.Random(seed)
    modules = [f"svc_{i}" for i in range(40)]
    funcs = [f"handle_{i}" for i in range(60)]
    # ~300 distinct bugs (a kind of failure raised through one call chain), each failing many
    # times with different volatile values: that is what a CI history looks like.
    bugs = [(k % 4, rng.choice(modules), rng.sample(funcs, 3)) for k in range(300)]
    results = []
    for _ in range(n):
        kind, module, chain = rng.choice(bugs)
        tmp = f"/tmp/pytest-of-ci/pytest-{rng.randint(1, 999)}/test_case{rng.randint(0, 9)}0"
        addr = f"0x7f{rng.getrandbits(40):010x}"
        if kind == 0:
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            etype = "AssertionError"
            message = (
                f"assert [{a}, 2, 3] == [{b}, 2, 3]\n  At index 0 diff: {a} != {b}\n"
                f"  Full diff:\n  - [{b}, 2, 3]\n  + [{a}, 2, 3]\n  Use -v to get more diff"
            )
        elif kind == 1:
            port = rng.randint(1024, 65535)
            etype = "TimeoutError"
            message = (
                f"request to http://127.0.0.1:{port}/api/v1/items/{uuid.UUID(int=rng.getrandbits(128))}"
                f" timed out after {rng.uniform(0.5, 30):.2f}s (attempt {rng.randint(1, 5)} of 5,"
                f" connected to localhost:{port} at {rng.randint(10, 23)}:{rng.randint(10, 59)}:"
                f"{rng.randint(10, 59)})"
            )
        elif kind == 2:
            etype = "KeyError"
            message = f"'user_{rng.randint(1, 10**6)}' not in cache <Cache object at {addr}>"
        else:
            etype = "FileNotFoundError"
            message = (
                f"[Errno 2] No such file or directory: {tmp}/data/{rng.choice(['a', 'b'])}.json"
                f" (worker gw{rng.randint(0, 7)}, {rng.randint(1, 900)}.{rng.randint(0, 9)} MB)"
            )
        traceback = (
            "Traceback (most recent call last):\n"
            + _LIB_FRAMES
            + _app_frames(rng, module, chain)
            + f"{etype}: {message.splitlines()[0]}\n"
        )
        results.append(
            TestResult(
                test_id=f"tests/test_{module}.py::test_{chain[0]}[case-{rng.randint(0, 99)}]",
                tool_name=module,
                variation="default",
                status=Status.FAIL,
                error_type=etype,
                error_message=message,
                traceback=traceback,
            )
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--version", type=int, help="fingerprint algorithm (default: current)")
    args = parser.parse_args()

    results = make_failures(args.n, args.seed)
    avg_msg = sum(len(r.error_message or "") for r in results) / len(results)
    avg_tb = sum(len(r.traceback or "") for r in results) / len(results)
    print(
        f"failures: {len(results):,} (message ~{avg_msg:.0f} chars, traceback ~{avg_tb:.0f} chars)"
    )
    # Said out loud because caching by message would be an easy win on repeated messages:
    # nearly every message here is distinct (volatile values), so nothing is cached by message.
    distinct_messages = len({r.error_message for r in results})
    distinct_tracebacks = len({r.traceback for r in results})
    # The frames of a traceback (all but its last line, the exception) repeat: bugs recur.
    distinct_stacks = len({(r.traceback or "").rsplit("\n", 2)[0] for r in results})
    print(
        f"distinct: {distinct_messages:,} messages, {distinct_tracebacks:,} tracebacks,"
        f" {distinct_stacks:,} frame stacks"
    )

    start = time.perf_counter()
    peer = {
        hashlib.sha1(((r.error_type or "") + (r.error_message or "")).encode()).hexdigest()
        for r in results
    }
    peer_secs = time.perf_counter() - start

    start = time.perf_counter()
    groups = {fingerprint(r, args.version).hash for r in results}
    secs = time.perf_counter() - start
    if args.version is None or args.version != 1:
        # Version 1 beside the current algorithm, measured in the same run (same machine load).
        start = time.perf_counter()
        v1_groups = {fingerprint(r, 1).hash for r in results}
        v1_secs = time.perf_counter() - start
        print(
            f"version 1:     {len(results) / v1_secs:12,.0f} failures/s  ({v1_secs:.2f} s)"
            f"  groups: {len(v1_groups):,}"
        )

    rate, peer_rate = len(results) / secs, len(results) / peer_secs
    made = fingerprint(results[0], args.version)
    print(
        f"fingerprint v{made.version}: {rate:12,.0f} failures/s  ({secs:.2f} s)"
        f"  groups: {len(groups):,}"
    )
    print(
        f"naive sha1 peer: {peer_rate:10,.0f} failures/s  ({peer_secs:.2f} s)"
        f"  groups: {len(peer):,}"
    )
    print(
        f"ratio fingerprint/peer: {rate / peer_rate:.3f}"
        f" (normalisation costs {peer_rate / rate:.1f}x)"
    )
    print(f"GOAL >= {GOAL}/s: {'MET' if rate >= GOAL else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
