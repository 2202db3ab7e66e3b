"""The assistant's model-backed features: each test talks to a (scripted) chat model.

``@pytest.mark.ledger(provider=..., model=...)`` stores the provider and model with the test's
result; the ``llm`` fixture adds the tokens and cost of every call (see conftest.py).
"""

from __future__ import annotations

import json

import pytest

# conftest.py sits beside this file in the demo project, which pytest puts on sys.path; in
# testledger's own source tree, where mypy reads it, it is not an importable module.
from conftest import FakeModel, times_out  # type: ignore[import-not-found,unused-ignore]

ARTICLE = "Ada Lovelace wrote the first published program for Analytical Engines Ltd in London."


@pytest.mark.ledger(provider="glm", model="glm-4.5-air")
def test_summarize_article(llm: FakeModel) -> None:
    reply = llm.complete(
        "summarize", "Ada Lovelace published the first program.", prompt_tokens=1_450
    )
    assert len(reply.text.split()) <= 12
    assert "Lovelace" in reply.text


@pytest.mark.ledger(provider="moonshot", model="kimi-k2")
def test_translate_support_ticket(llm: FakeModel) -> None:
    reply = llm.complete(
        "translate",
        "Bonjour, ma facture de mars est en double. Pouvez-vous rembourser la seconde ?",
        prompt_tokens=820,
    )
    assert reply.text.startswith("Bonjour")


@pytest.mark.ledger(provider="openai", model="gpt-4o-mini")
def test_extract_entities(llm: FakeModel, iteration: int) -> None:
    # The story: a prompt change drops organisations that are not at the start of the text
    # (commits 1-4); commit 5 fixes it; a refactoring at commit 10 brings the bug back.
    broken = iteration <= 4 or iteration >= 10
    orgs = ["Analytical Engines Ltd"] if broken else ["ACME Corp", "Analytical Engines Ltd"]
    reply = llm.complete(
        "extract",
        json.dumps({"people": ["Ada Lovelace"], "orgs": orgs, "places": ["London"]}),
        prompt_tokens=2_100,
    )
    entities = json.loads(reply.text)
    assert entities == {
        "people": ["Ada Lovelace"],
        "orgs": ["ACME Corp", "Analytical Engines Ltd"],
        "places": ["London"],
    }


@pytest.mark.ledger(provider="glm", model="glm-4.5")
def test_weather_tool_call(llm: FakeModel, iteration: int) -> None:
    # Commit 12 upgrades the model, which now names the tool's arguments "args".
    key = "args" if iteration >= 12 else "arguments"
    reply = llm.complete(
        "tool-call",
        json.dumps({"name": "get_weather", key: {"city": "Paris"}}),
        prompt_tokens=640,
    )
    call = json.loads(reply.text)
    assert call["arguments"]["city"] == "Paris"


@pytest.mark.intermittent
@pytest.mark.ledger(provider="moonshot", model="kimi-k2")
def test_web_search_tool(llm: FakeModel, iteration: int, attempt: int) -> None:
    # The search backend is slow now and then, whatever the commit: a flaky test.
    waited = times_out("web-search", iteration, attempt)
    if waited is not None:
        # The demo does not really wait: the message says so, the recorded duration stays true.
        raise TimeoutError(
            f"search backend did not answer within 2.0 s (simulated wait: {waited:.2f} s)"
        )
    reply = llm.complete("search", "Paris: 18 °C, light rain", prompt_tokens=1_200)
    assert "Paris" in reply.text
