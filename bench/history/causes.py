"""The failure causes of the labelled history: what fails, where it is raised, how it reads.

Each cause is one bug (or one flaky mechanism, or one infrastructure outage) of a made-up
grocery-delivery service, ``larder``. A cause says where it is RAISED (one project frame, its
module and function), the different call paths that reach that frame from the tests (of
different depths: the same bug reached through different callers), the library frames below it
(site-packages, the standard library), and a message whose volatile parts (UUIDs, ports,
addresses, temp paths, timestamps, counts) change on every failure.

Near-duplicates that a careful reader keeps apart are designed in pairs (see ``PAIRS``): the
same function raising KeyError for a different key, HTTP errors of a different status class
from the same client and the same status from another module's client, a missing repository
file versus a missing temp upload read by the same loader, the same AttributeError raised in
another module, an assertion comparing different string literals in the same test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CAUSES", "PAIRS", "Cause", "Frame"]

Frame = tuple[str, str]  # (repository-relative path, function)
Message = Callable[[random.Random], str]

LIB_REQUESTS: tuple[Frame, ...] = (("site-packages/requests/models.py", "raise_for_status"),)
LIB_ASYNCIO: tuple[Frame, ...] = (
    ("lib/python3.12/asyncio/tasks.py", "wait_for"),
    ("lib/python3.12/asyncio/timeouts.py", "__aexit__"),
)
LIB_JSON: tuple[Frame, ...] = (
    ("lib/python3.12/json/__init__.py", "loads"),
    ("lib/python3.12/json/decoder.py", "decode"),
    ("lib/python3.12/json/decoder.py", "raw_decode"),
)
LIB_SQLA: tuple[Frame, ...] = (
    ("site-packages/sqlalchemy/pool/base.py", "connect"),
    ("site-packages/sqlalchemy/pool/impl.py", "_do_get"),
)
LIB_PLAYWRIGHT: tuple[Frame, ...] = (
    ("site-packages/playwright/sync_api/_generated.py", "click"),
    ("site-packages/playwright/_impl/_connection.py", "wrap_api_call"),
)
LIB_SOCKET: tuple[Frame, ...] = (("lib/python3.12/socket.py", "create_connection"),)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _port(rng: random.Random) -> int:
    return rng.randint(32768, 60999)


def _tmp(rng: random.Random, name: str) -> str:
    return f"/tmp/pytest-of-runner/pytest-{rng.randint(1, 900)}/{name}{rng.randint(0, 3)}"


def _stamp(rng: random.Random) -> str:
    return (
        f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}Z"
    )


_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def _http_5xx(rng: random.Random) -> str:
    code = rng.choice((500, 502, 503))
    rng.choice(tuple(_REASONS.values()))  # drawn, unused: keeps the seeded stream as it was
    return f"{code} Server Error: {_REASONS[code]} for url: http://127.0.0.1:{_port(rng)}/v2/invoices/{_uuid(rng)}"


@dataclass(frozen=True)
class Cause:
    """One cause of failures.

    ``kind``: ``fixed`` (active in ``windows`` then fixed: its issue ends RESOLVED),
    ``regressed`` (fixed, then back: OPEN), ``ongoing`` (OPEN), ``branch`` (only on
    ``branch_slot``'s PR branch: that branch's issue), ``merged`` (first on a PR branch, then
    on main once merged: main's issue, OPEN), ``flaky`` (intermittent, each of its tests at its
    own rate), ``outage`` (one run, a share of every test: RESOLVED).
    ``windows``: [start, end) fractions of the main history (commits) in which it is active.
    ``tests``: how many tests it hits, from ``areas`` (test modules' areas).
    """

    name: str
    kind: str
    exception: str
    raised_in: Frame
    paths: tuple[tuple[Frame, ...], ...]  # callers, outermost first, below the test function
    message: Message
    areas: tuple[str, ...]
    tests: int
    windows: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    library: tuple[Frame, ...] = ()
    status: str = "FAIL"
    pytest_style: bool = False  # an assertion in the test itself, in pytest's format
    branch_slot: int | None = None  # which PR branch, by index (-2: the second last)
    rates: tuple[float, ...] = ()  # flaky: the failure rate of each of its tests
    retried: tuple[bool, ...] = ()  # flaky: does its test retry (pytest-rerunfailures)
    share: float = 0.0  # outage: share of tests hit
    extra: dict[str, str] = field(default_factory=dict)


BILLING_SEND = ("src/larder/billing/client.py", "_send")
INVENTORY_SEND = ("src/larder/inventory/client.py", "_send")
PARSE_CALL = ("src/larder/llm/tools.py", "parse_call")
LOAD_FIXTURE = ("src/larder/catalog/loader.py", "load_file")

CAUSES: tuple[Cause, ...] = (
    Cause(
        "billing-5xx",
        "fixed",
        "requests.exceptions.HTTPError",
        BILLING_SEND,
        (
            (
                ("src/larder/billing/service.py", "create_invoice"),
                ("src/larder/billing/client.py", "post"),
            ),
            (
                ("src/larder/checkout/flow.py", "complete"),
                ("src/larder/billing/service.py", "charge"),
                ("src/larder/billing/service.py", "create_invoice"),
                ("src/larder/billing/client.py", "post"),
            ),
            (("src/larder/billing/retry.py", "call"),),
            (
                ("src/larder/orders/api.py", "place"),
                ("src/larder/checkout/flow.py", "complete"),
                ("src/larder/billing/service.py", "charge"),
                ("src/larder/billing/retry.py", "call"),
            ),
        ),
        lambda r: _http_5xx(r),
        ("billing", "checkout", "orders"),
        40,
        ((0.15, 0.38),),
        LIB_REQUESTS,
    ),
    Cause(
        "billing-4xx",
        "regressed",
        "requests.exceptions.HTTPError",
        BILLING_SEND,
        (
            (
                ("src/larder/billing/customers.py", "lookup"),
                ("src/larder/billing/client.py", "get"),
            ),
            (("src/larder/billing/retry.py", "call"),),
        ),
        lambda r: (
            f"404 Client Error: Not Found for url: "
            f"http://127.0.0.1:{_port(r)}/v2/customers/{_uuid(r)}"
        ),
        ("billing",),
        10,
        ((0.25, 0.42), (0.8, 1.0)),
        LIB_REQUESTS,
    ),
    Cause(
        "inventory-4xx",
        "ongoing",
        "requests.exceptions.HTTPError",
        INVENTORY_SEND,
        (
            (
                ("src/larder/inventory/stock.py", "reserve"),
                ("src/larder/inventory/client.py", "get"),
            ),
            (
                ("src/larder/checkout/flow.py", "complete"),
                ("src/larder/inventory/stock.py", "reserve"),
                ("src/larder/inventory/client.py", "get"),
            ),
        ),
        lambda r: (
            f"404 Client Error: Not Found for url: "
            f"http://127.0.0.1:{_port(r)}/v1/stock/SKU-{r.randint(10000, 99999)}"
        ),
        ("inventory", "checkout"),
        15,
        ((0.58, 1.0),),
        LIB_REQUESTS,
    ),
    Cause(
        "stream-timeout",
        "ongoing",
        "TimeoutError",
        ("src/larder/streaming/reader.py", "read_chunk"),
        (
            (("src/larder/streaming/reader.py", "iter_events"),),
            (
                ("src/larder/streaming/sse.py", "consume"),
                ("src/larder/streaming/reader.py", "iter_events"),
            ),
            (
                ("src/larder/chat/session.py", "reply"),
                ("src/larder/streaming/sse.py", "consume"),
                ("src/larder/streaming/reader.py", "iter_events"),
            ),
            (
                ("src/larder/chat/session.py", "reply"),
                ("src/larder/chat/session.py", "_stream"),
                ("src/larder/streaming/sse.py", "consume"),
                ("src/larder/streaming/reader.py", "iter_events"),
            ),
        ),
        lambda r: (
            f"stream read timed out after {r.choice(('30.0', '30.00', '31.2'))}s "
            f"(received {r.randint(0, 40000)} bytes) from 127.0.0.1:{_port(r)}"
        ),
        ("streaming", "chat", "notify"),
        45,
        ((0.5, 1.0),),
        LIB_ASYNCIO,
    ),
    Cause(
        "utcnow-deprecated",
        "fixed",
        "DeprecationWarning",
        ("src/larder/util/clock.py", "now"),
        tuple(
            ((f"src/larder/{area}/{module}.py", func),)
            for area, module, func in (
                ("orders", "api", "place"),
                ("billing", "service", "create_invoice"),
                ("notify", "mailer", "schedule"),
                ("reports", "daily", "build"),
                ("auth", "tokens", "issue"),
                ("catalog", "prices", "refresh"),
                ("search", "index", "touch"),
                ("uploads", "store", "stamp"),
            )
        ),
        lambda r: (
            "datetime.datetime.utcnow() is deprecated and scheduled for removal in a future "
            "version. Use timezone-aware objects to represent datetimes in UTC: "
            "datetime.datetime.now(datetime.UTC)."
        ),
        ("orders", "billing", "notify", "reports", "auth", "catalog", "search", "uploads"),
        32,
        ((0.08, 0.33),),
    ),
    Cause(
        "tool-args-key",
        "fixed",
        "KeyError",
        PARSE_CALL,
        (
            (("src/larder/llm/agent.py", "step"),),
            (("src/larder/chat/session.py", "reply"), ("src/larder/llm/agent.py", "step")),
            (
                ("src/larder/chat/session.py", "reply"),
                ("src/larder/llm/agent.py", "run"),
                ("src/larder/llm/agent.py", "step"),
            ),
        ),
        lambda r: "'arguments'",
        ("chat", "llm"),
        20,
        ((0.4, 0.66),),
    ),
    Cause(
        "tool-calls-key",
        "ongoing",
        "KeyError",
        PARSE_CALL,
        (
            (("src/larder/llm/agent.py", "step"),),
            (("src/larder/chat/session.py", "reply"), ("src/larder/llm/agent.py", "step")),
        ),
        lambda r: "'tool_calls'",
        ("llm",),
        10,
        ((0.83, 1.0),),
    ),
    Cause(
        "repo-fixture-missing",
        "regressed",
        "FileNotFoundError",
        LOAD_FIXTURE,
        (
            (("src/larder/catalog/loader.py", "load_fixture"),),
            (
                ("tests/catalog/conftest.py", "catalog"),
                ("src/larder/catalog/loader.py", "load_fixture"),
            ),
        ),
        lambda r: (
            "[Errno 2] No such file or directory: "
            "'/home/runner/work/larder/larder/data/fixtures/catalog-2026.json'"
        ),
        ("catalog", "search"),
        14,
        ((0.12, 0.28), (0.9, 1.0)),
    ),
    Cause(
        "temp-upload-missing",
        "fixed",
        "FileNotFoundError",
        LOAD_FIXTURE,
        (
            (("src/larder/uploads/store.py", "import_upload"),),
            (
                ("src/larder/uploads/api.py", "receive"),
                ("src/larder/uploads/store.py", "import_upload"),
            ),
        ),
        lambda r: (
            "[Errno 2] No such file or directory: "
            f"'{_tmp(r, 'test_upload_')}/upload-{r.getrandbits(32):08x}.csv'"
        ),
        ("uploads", "catalog"),
        12,
        ((0.45, 0.62),),
    ),
    Cause(
        "model-alias",
        "fixed",
        "AssertionError",
        ("tests/llm/test_aliases.py", "test_resolve_alias"),
        ((),),
        lambda r: "assert 'sonnet-4' == 'sonnet-4.5'",
        ("llm-aliases",),
        4,
        ((0.2, 0.5),),
        pytest_style=True,
    ),
    Cause(
        "model-alias-pr",
        "branch",
        "AssertionError",
        ("tests/llm/test_aliases.py", "test_resolve_alias"),
        ((),),
        lambda r: "assert 'haiku-3.5' == 'sonnet-4'",
        ("llm-aliases",),
        3,
        branch_slot=1,
        pytest_style=True,
    ),
    Cause(
        "export-row-count",
        "regressed",
        "AssertionError",
        ("tests/reports/test_export.py", "test_export_rows"),
        ((),),
        lambda r: f"assert {r.randint(0, 11)} == 12",
        ("reports-export",),
        4,
        ((0.3, 0.45), (0.75, 1.0)),
        pytest_style=True,
    ),
    Cause(
        "discount-none",
        "ongoing",
        "AttributeError",
        ("src/larder/pricing/rules.py", "apply_discount"),
        (
            (("src/larder/pricing/engine.py", "price"),),
            (("src/larder/checkout/flow.py", "total"), ("src/larder/pricing/engine.py", "price")),
        ),
        lambda r: "'NoneType' object has no attribute 'currency'",
        ("pricing", "checkout"),
        18,
        ((0.66, 1.0),),
    ),
    Cause(
        "tax-none",
        "fixed",
        "AttributeError",
        ("src/larder/billing/tax.py", "compute"),
        (
            (("src/larder/billing/service.py", "create_invoice"),),
            (
                ("src/larder/billing/service.py", "charge"),
                ("src/larder/billing/service.py", "create_invoice"),
            ),
        ),
        lambda r: "'NoneType' object has no attribute 'currency'",
        ("billing",),
        12,
        ((0.7, 0.86),),
    ),
    Cause(
        "order-timestamp",
        "fixed",
        "ValueError",
        ("src/larder/orders/parse.py", "parse_ts"),
        (
            (("src/larder/orders/api.py", "place"), ("src/larder/orders/parse.py", "parse")),
            (("src/larder/orders/parse.py", "parse"),),
        ),
        lambda r: f"invalid timestamp '{_stamp(r)}' for order {_uuid(r)}: expected an offset",
        ("orders",),
        16,
        ((0.05, 0.2),),
    ),
    Cause(
        "closed-session",
        "ongoing",
        "RuntimeError",
        ("src/larder/db/session.py", "execute"),
        (
            (("src/larder/db/repo.py", "fetch"),),
            (("src/larder/orders/api.py", "place"), ("src/larder/db/repo.py", "save")),
            (("src/larder/reports/daily.py", "build"), ("src/larder/db/repo.py", "fetch")),
        ),
        lambda r: (
            f"Session <larder.db.session.Session object at 0x7f{r.getrandbits(40):010x}> "
            f"is closed (pid {r.randint(1000, 65000)}, {r.randint(1, 40)} statements pending)"
        ),
        ("orders", "reports"),
        14,
        ((0.72, 1.0),),
    ),
    Cause(
        "pool-exhausted",
        "fixed",
        "sqlalchemy.exc.TimeoutError",
        ("src/larder/db/session.py", "checkout"),
        (
            (("src/larder/db/repo.py", "fetch"), ("src/larder/db/session.py", "execute")),
            (("tests/conftest.py", "db"),),
        ),
        lambda r: (
            "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout "
            f"{r.choice(('30.00', '30.01'))} (Background on this error at: "
            "https://sqlalche.me/e/20/3o7r)"
        ),
        ("reports", "search", "orders"),
        20,
        ((0.55, 0.64),),
        LIB_SQLA,
    ),
    Cause(
        "llm-body-json",
        "ongoing",
        "json.decoder.JSONDecodeError",
        ("src/larder/llm/client.py", "parse_body"),
        (
            (("src/larder/llm/client.py", "complete"),),
            (("src/larder/llm/agent.py", "step"), ("src/larder/llm/client.py", "complete")),
        ),
        lambda r: f"Expecting value: line 1 column {r.randint(1, 900)} (char {r.randint(0, 899)})",
        ("llm",),
        8,
        ((0.35, 1.0),),
        LIB_JSON,
    ),
    Cause(
        "rank-index",
        "fixed",
        "IndexError",
        ("src/larder/search/rank.py", "top"),
        ((("src/larder/search/query.py", "run"),),),
        lambda r: "list index out of range",
        ("search-rank",),
        1,
        ((0.52, 0.65),),
    ),
    Cause(
        "report-mean-zero",
        "merged",
        "ZeroDivisionError",
        ("src/larder/reports/stats.py", "mean"),
        (
            (("src/larder/reports/daily.py", "build"),),
            (("src/larder/reports/weekly.py", "build"), ("src/larder/reports/daily.py", "build")),
        ),
        lambda r: "division by zero",
        ("reports",),
        6,
        ((0.93, 1.0),),
        branch_slot=-2,
    ),
    Cause(
        "cart-currency-pr",
        "branch",
        "AssertionError",
        ("tests/checkout/test_cart.py", "test_cart_currency"),
        ((),),
        lambda r: "assert 'EUR' == 'USD'",
        ("checkout-cart",),
        1,
        branch_slot=2,
        pytest_style=True,
    ),
    Cause(
        "legacy-import-pr",
        "branch",
        "ImportError",
        ("src/larder/checkout/__init__.py", "<module>"),
        ((("src/larder/checkout/legacy.py", "<module>"),),),
        lambda r: (
            "cannot import name 'LegacyCart' from 'larder.checkout.cart' "
            "(/home/runner/work/larder/larder/src/larder/checkout/cart.py)"
        ),
        ("checkout",),
        6,
        branch_slot=4,
        status="ERROR",
    ),
    # --- flaky mechanisms: each test at its own rate, some retried --------------------------
    Cause(
        "pool-reset-flaky",
        "flaky",
        "ConnectionResetError",
        ("src/larder/net/pool.py", "acquire"),
        (
            (("src/larder/inventory/client.py", "get"),),
            (("src/larder/billing/client.py", "post"),),
        ),
        lambda r: "[Errno 104] Connection reset by peer",
        ("inventory", "billing"),
        3,
        library=LIB_SOCKET,
        rates=(0.05, 0.12, 0.3),
        retried=(True, False, True),
    ),
    Cause(
        "event-wait-flaky",
        "flaky",
        "TimeoutError",
        ("src/larder/events/bus.py", "wait_for"),
        (
            (("src/larder/orders/api.py", "place"),),
            (("tests/orders/conftest.py", "paid_order"), ("src/larder/orders/api.py", "place")),
        ),
        lambda r: (
            f"timed out waiting for event 'order.paid' after {r.choice(('2.0', '2.00'))}s "
            f"(got {r.randint(0, 2)} events, last at {_stamp(r)})"
        ),
        ("orders", "notify"),
        4,
        rates=(0.02, 0.08, 0.2, 0.4),
        retried=(False, True, False, True),
    ),
    Cause(
        "rank-order-flaky",
        "flaky",
        "AssertionError",
        ("tests/search/test_order.py", "test_stable_order"),
        ((),),
        lambda r: "assert ['bread', 'apples'] == ['apples', 'bread']",
        ("search-order",),
        1,
        pytest_style=True,
        rates=(0.15,),
        retried=(False,),
    ),
    Cause(
        "open-files-flaky",
        "flaky",
        "OSError",
        ("src/larder/uploads/store.py", "open_part"),
        (
            (("src/larder/uploads/store.py", "import_upload"),),
            (
                ("src/larder/uploads/api.py", "receive"),
                ("src/larder/uploads/store.py", "import_upload"),
            ),
        ),
        lambda r: f"[Errno 24] Too many open files: '{_tmp(r, 'parts')}/part-{r.randint(0, 99)}'",
        ("uploads",),
        2,
        rates=(0.03, 0.1),
        retried=(False, False),
    ),
    Cause(
        "ui-timeout-flaky",
        "flaky",
        "playwright._impl._errors.TimeoutError",
        ("tests/ui/pages.py", "click_pay"),
        ((("tests/ui/pages.py", "checkout"),), ()),
        lambda r: (
            f"Timeout {r.choice((5000, 10000))}ms exceeded.\n"
            "=========================== logs ===========================\n"
            'waiting for locator("#pay-now")'
        ),
        ("ui",),
        5,
        library=LIB_PLAYWRIGHT,
        rates=(0.05, 0.06, 0.1, 0.25, 0.35),
        retried=(True, False, False, True, False),
    ),
    # --- infrastructure outages: one run each --------------------------------------------
    Cause(
        "db-outage",
        "outage",
        "ConnectionRefusedError",
        ("src/larder/db/session.py", "connect"),
        (
            (("tests/conftest.py", "db"),),
            (("tests/conftest.py", "app"), ("tests/conftest.py", "db")),
        ),
        lambda r: f"[Errno 111] Connection refused ('127.0.0.1', {r.choice((5432, 6432))})",
        (),
        0,
        ((0.46, 0.47),),
        LIB_SOCKET,
        status="ERROR",
        share=0.42,
    ),
    Cause(
        "disk-full-outage",
        "outage",
        "OSError",
        ("src/larder/util/cache.py", "write"),
        ((("tests/conftest.py", "app"),), (("src/larder/util/cache.py", "put"),)),
        lambda r: f"[Errno 28] No space left on device: '{_tmp(r, 'cache')}/{_uuid(r)}.db'",
        (),
        0,
        ((0.78, 0.79),),
        status="ERROR",
        share=0.62,
    ),
)

#: Causes a careful reader keeps apart, with why.
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("tool-args-key", "tool-calls-key", "a different missing key, same function"),
    ("billing-5xx", "billing-4xx", "a different HTTP status class, same client"),
    ("billing-4xx", "inventory-4xx", "the same status from another module's client"),
    ("repo-fixture-missing", "temp-upload-missing", "a repository file vs a temp upload"),
    ("discount-none", "tax-none", "the same AttributeError raised in another module"),
    ("model-alias", "model-alias-pr", "an assertion comparing different string literals"),
)
