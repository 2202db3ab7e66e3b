"""Fixtures of the testledger demo suite.

The suite stands for a small LLM-backed assistant project. Each run reads which commit of the
story it is (``demo_state.json``, written and committed by ``testledger demo`` before every run)
and behaves accordingly, so that the recorded history holds a flaky test, a slowdown, a
failure that is fixed and comes back, and model calls whose tokens and cost vary.

No model is really called: ``llm`` answers deterministically from the iteration, and stores
provider, model, tokens and cost with the test's result through testledger's ``ledger``
fixture - exactly what a real suite does with a real client's ``usage``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pytest

from testledger.record.pytest_plugin import LedgerHandle

STATE_FILE = "demo_state.json"

#: USD per million tokens (input, output) of the models the suite pretends to call.
PRICES = {
    "glm-4.5-air": (0.20, 1.10),
    "glm-4.5": (0.60, 2.20),
    "kimi-k2": (0.60, 2.50),
    "gpt-4o-mini": (0.15, 0.60),
}


def wobble(key: str, iteration: int, spread: float = 0.12) -> float:
    """A factor in [1 - spread, 1 + spread], the same for the same key and iteration: the
    run-to-run noise of a model's token counts, made repeatable."""
    digest = hashlib.sha256(f"{key}:{iteration}".encode()).digest()
    return 1.0 + spread * (digest[0] / 127.5 - 1.0)


def times_out(key: str, iteration: int, attempt: int) -> float | None:
    """How long a flaky backend made the test wait when it timed out, else None: a repeatable
    pseudo-random pattern. The first attempt times out 3 times in 8; a retry after a timeout
    times out again 1 time in 2."""
    digest = hashlib.sha256(f"{key}:{iteration}".encode()).digest()
    slow = digest[0] % 8 < 3 if attempt == 1 else digest[attempt - 1] % 2 == 0
    return 2.0 + digest[-1] / 200 if slow else None


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass
class FakeModel:
    """A chat model that answers from a script; usage is added up into the test's result."""

    provider: str
    model: str
    iteration: int
    handle: LedgerHandle  # what testledger's ``ledger`` fixture gives a test
    used: dict[str, float] = field(default_factory=dict)

    def complete(self, task: str, answer: str, *, prompt_tokens: int) -> Completion:
        factor = wobble(f"{self.model}:{task}", self.iteration)
        input_tokens = round(prompt_tokens * factor)
        output_tokens = round((len(answer.split()) * 4 + 40) * factor)
        price_in, price_out = PRICES[self.model]
        cost = (input_tokens * price_in + output_tokens * price_out) / 1_000_000
        for name, value in (
            ("tokens_input", input_tokens),
            ("tokens_output", output_tokens),
            ("tokens_total", input_tokens + output_tokens),
            ("cost_usd", cost),
        ):
            self.used[name] = self.used.get(name, 0) + value
        self.handle.set(
            tokens_input=int(self.used["tokens_input"]),
            tokens_output=int(self.used["tokens_output"]),
            tokens_total=int(self.used["tokens_total"]),
            cost_usd=round(self.used["cost_usd"], 6),
        )
        return Completion(answer, input_tokens, output_tokens, cost)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "intermittent: fails now and then; retried once when pytest-rerunfailures is on"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A retry is what many teams do about an intermittent test; testledger records both
    # attempts, and a failure followed by a pass on the same commit is evidence of flakiness.
    # Only with pytest-rerunfailures installed: the demo does not require it.
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        if item.get_closest_marker("intermittent") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1))


@pytest.fixture(scope="session")
def iteration(pytestconfig: pytest.Config) -> int:
    """Which commit of the demo's story this run is (1, 2, ...)."""
    state = json.loads((pytestconfig.rootpath / STATE_FILE).read_text(encoding="utf-8"))
    return int(state["iteration"])


@pytest.fixture
def attempt(request: pytest.FixtureRequest) -> int:
    """1 for the first attempt, 2 for pytest-rerunfailures' first retry, ..."""
    return int(getattr(request.node, "execution_count", 1))


@pytest.fixture
def llm(request: pytest.FixtureRequest, ledger: LedgerHandle, iteration: int) -> FakeModel:
    """The model named by the test's ``@pytest.mark.ledger(provider=..., model=...)``."""
    marker = request.node.get_closest_marker("ledger")
    if marker is None or "model" not in marker.kwargs:
        raise pytest.UsageError(f"{request.node.nodeid}: mark it ledger(provider=, model=)")
    return FakeModel(marker.kwargs["provider"], marker.kwargs["model"], iteration, ledger)
