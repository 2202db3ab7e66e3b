"""The ``llm`` watcher: asks any OpenAI-compatible chat-completions endpoint (z.ai's GLM,
Moonshot's Kimi, OpenAI, a local Ollama or vLLM) to judge each result.

The prompt carries the result, its recent history and earlier observations from the ledger, the
test's open issues and the change points recorded for its metrics (``watcher.context``: what an
agent asking the MCP server about the test sees too), and asks for one strict JSON object, which
is validated. A malformed or failed answer becomes an
observation with no score, confidence 0 and the error; it never raises. Text sent to the model
is bounded by ``max_input_chars``; when it is cut the prompt says so and by how much, and the
observation records ``truncated``. Settings that cannot call at all (OpenAI's default endpoint
without a key, or a key's variable named but not set) are refused by :func:`create`, before a
run is touched.

The budget (``budget_usd``) is checked before each call: once the watcher's own spend reaches
it, later results get **no observation** (so a later ``testledger watch --only-missing`` with a
new budget picks them up). With ``concurrency`` > 1 the calls already in flight when the budget
is reached still finish, so the spend can pass the budget by at most that many calls.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from testledger.analyze.watcher.base import RecentHistory, ResultContext
from testledger.errors import ConfigError
from testledger.model import WatcherObservation

__all__ = ["LlmSettings", "LlmWatcher", "create"]

_SYSTEM_PROMPT = (
    "You are a test watcher. You judge one recorded result of an automated test suite "
    "against the test's own history. Answer with ONE JSON object and nothing else, with keys: "
    '"quality_score" (integer 1-10, 10 = flawless), "strengths", "weaknesses", "anomalies", '
    '"recommendations" (arrays of short concrete sentences, with numbers where they help), '
    'and "confidence" (number 0-1).'
)
_LIST_KEYS = ("strengths", "weaknesses", "anomalies", "recommendations")


_OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """``[tool.testledger.watcher.llm]``."""

    base_url: str = _OPENAI_URL
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    concurrency: int = 4
    budget_usd: float | None = None
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    max_input_chars: int = 8000


class _AnswerError(Exception):
    """The endpoint answered, but not with a usable observation."""


class LlmWatcher:
    """One observation per result, from one chat-completions call each."""

    name = "llm"
    wants_observations = True

    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cost = 0.0
        self._tokens = 0
        self.budget_reached = False

    def spend(self) -> tuple[float, int]:
        with self._lock:
            return self._cost, self._tokens

    def watch(
        self, items: Sequence[tuple[ResultContext, RecentHistory]]
    ) -> list[WatcherObservation | None]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.settings.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        with httpx.Client(
            base_url=self.settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=self.settings.timeout,
        ) as client:
            if self.settings.concurrency <= 1:
                return [self._observe(client, r, h) for r, h in items]
            with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
                return list(pool.map(lambda item: self._observe(client, *item), items))

    def _over_budget(self) -> bool:
        budget = self.settings.budget_usd
        with self._lock:
            if budget is not None and self._cost >= budget:
                self.budget_reached = True
            return self.budget_reached

    def _observe(
        self, client: httpx.Client, result: ResultContext, history: RecentHistory
    ) -> WatcherObservation | None:
        if result.status.upper() == "SKIP" or self._over_budget():
            return None
        prompt, truncated = build_prompt(result, history, self.settings.max_input_chars)
        usage: dict[str, Any] = {}
        try:
            body = self._call(client, prompt)
            usage = body.get("usage") or {} if isinstance(body, dict) else {}
            answer = _parse(body)
        except (_AnswerError, httpx.HTTPError) as exc:
            return self._observation(None, truncated, usage, error=_describe(exc))
        return self._observation(answer, truncated, usage)

    def _call(self, client: httpx.Client, prompt: str) -> Any:
        payload = {
            "model": self.settings.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ],
        }
        attempt = 0
        while True:
            try:
                response = client.post("chat/completions", json=payload)
            except httpx.TransportError:  # timeouts and refused connections
                if attempt >= self.settings.retries:
                    raise
            else:
                retryable = response.status_code == 429 or response.status_code >= 500
                if not retryable or attempt >= self.settings.retries:
                    response.raise_for_status()
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise _AnswerError(f"response is not JSON: {exc}") from exc
                if response.status_code == 429 and _retry_after(response) is not None:
                    time.sleep(_retry_after(response) or 0.0)
                    attempt += 1
                    continue
            time.sleep(self.settings.backoff * 2**attempt)
            attempt += 1

    def _observation(
        self,
        answer: dict[str, Any] | None,
        truncated: bool,
        usage: dict[str, Any],
        *,
        error: str | None = None,
    ) -> WatcherObservation:
        input_tokens = _int(usage.get("prompt_tokens"))
        output_tokens = _int(usage.get("completion_tokens"))
        cost = (
            (input_tokens or 0) * self.settings.price_input_per_mtok
            + (output_tokens or 0) * self.settings.price_output_per_mtok
        ) / 1_000_000
        with self._lock:
            self._cost += cost
            self._tokens += (input_tokens or 0) + (output_tokens or 0)
        common: dict[str, Any] = {
            "watcher": self.name,
            "watcher_model": self.settings.model,
            "watcher_input_tokens": input_tokens,
            "watcher_output_tokens": output_tokens,
            "watcher_cost_usd": round(cost, 6) if usage else None,
            "truncated": truncated,
        }
        if answer is None:
            return WatcherObservation(quality_score=None, confidence=0.0, error=error, **common)
        return WatcherObservation(
            quality_score=answer["quality_score"],
            strengths=answer["strengths"],
            weaknesses=answer["weaknesses"],
            anomalies=answer["anomalies"],
            recommendations=answer["recommendations"],
            confidence=answer["confidence"],
            raw=answer,
            **common,
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return None if value is None else min(60.0, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date: fall back to the exponential backoff


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"watcher call timed out: {type(exc).__name__}"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"watcher call failed: HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return f"watcher call failed: {type(exc).__name__}: {exc}"
    return str(exc)


def _parse(body: Any) -> dict[str, Any]:
    """The validated JSON answer from a chat-completions response. Raises _AnswerError."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise _AnswerError("malformed answer: no choices[0].message.content") from exc
    text = str(content).strip()
    if text.startswith("```"):  # models like to fence JSON even when told not to
        text = text.strip("`").removeprefix("json").strip()
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise _AnswerError(f"malformed answer: not JSON ({exc})") from exc
    if not isinstance(answer, dict):
        raise _AnswerError("invalid answer: not a JSON object")
    score = answer.get("quality_score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 10:
        raise _AnswerError(f"invalid answer: quality_score must be an integer 1-10, got {score!r}")
    for key in _LIST_KEYS:
        values = answer.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _AnswerError(f"invalid answer: {key} must be a list of strings")
        answer[key] = values
    confidence = answer.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not 0 <= confidence <= 1
    ):
        raise _AnswerError(f"invalid answer: confidence must be 0-1, got {confidence!r}")
    answer["confidence"] = None if confidence is None else float(confidence)
    return answer


def _bound(label: str, text: str, limit: int, notes: list[str]) -> str:
    if len(text) <= limit:
        return text
    notes.append(
        f"NOTE: the {label} was truncated: {limit} of {len(text)} characters shown "
        f"({len(text) - limit} cut)."
    )
    return text[:limit] + f"\n[... {len(text) - limit} more characters truncated]"


#: How many of a test's open issues and recorded change points the prompt lists.
CONTEXT_ITEMS = 5


def context_lines(history: RecentHistory) -> list[str]:
    """The test's open issues and the change points recorded for its metrics, as the prompt
    tells them (the same ``watcher.context`` data an agent gets from the MCP server)."""
    lines: list[str] = []
    if history.open_issues:
        lines.append("Open issues of this test:")
        lines.extend(
            f"- {i.code} [{i.status}, {i.priority}, {i.category}] {i.title[:160]}"
            f" ({i.occurrences} occurrence(s) of this test, last seen in run {i.last_seen_run_id})"
            for i in history.open_issues[:CONTEXT_ITEMS]
        )
    if history.changes:
        lines.append("Change points recorded for this test's metrics (newest first):")
        lines.extend(
            f"- {c.metric} {c.before_mean:g} -> {c.after_mean:g}"
            + (f" ({c.magnitude_pct:+g}%)" if c.magnitude_pct is not None else "")
            + f" from run {c.first_run_id} ({c.commit_range}), issue {c.issue_code} {c.status}"
            for c in history.changes[:CONTEXT_ITEMS]
        )
    return lines


def build_prompt(result: ResultContext, history: RecentHistory, max_chars: int) -> tuple[str, bool]:
    """The user message for one result, and whether any of its text was truncated. The error
    and the output excerpt share ``max_chars`` (half each); the metrics and history are short."""
    notes: list[str] = []
    half = max(200, max_chars // 2)
    error = _bound("error message", result.error_message or "", half, notes)
    output = _bound("output excerpt", result.output_excerpt or "", half, notes)
    details = json.dumps(dict(result.details), default=str, sort_keys=True)
    details = _bound("inputs", details, half, notes) if result.details else ""
    lines = [
        f"Test: {result.test_id} (tool {result.tool_name}, variation {result.variation})",
        f"Status: {result.status}",
        f"Model under test: {result.provider or '-'} / {result.model or '-'}",
        "Metrics: "
        + ", ".join(
            f"{name}={value}"
            for name, value in (
                ("duration_secs", result.duration_secs),
                ("memory_mb", result.memory_mb),
                ("tokens_total", result.tokens_total),
                ("cost_usd", result.cost_usd),
                *sorted(result.metrics.items()),
            )
            if value is not None
        ),
    ]
    if result.error_type or error:
        lines.append(f"Error: {result.error_type or ''} {error}".rstrip())
    if details:
        lines.append(f"Inputs: {details}")
    if output:
        lines.append(f"Output excerpt:\n{output}")
    lines.append(f"History (last {len(history.points)} earlier runs, newest first):")
    lines.extend(
        f"- run {p.run_id} {p.run_timestamp:%Y-%m-%d}: {p.status}, "
        f"duration_secs={p.duration_secs}, tokens_total={p.tokens_total}, "
        f"cost_usd={p.cost_usd}, quality={p.watcher_quality}"
        + (f", error_type={p.error_type}" if p.error_type else "")
        for p in history.points
    )
    lines.extend(context_lines(history))
    if history.observations:
        lines.append("Previous watcher observations (newest first):")
        lines.extend(
            f"- run {o.run_id} ({o.watcher}): quality={o.quality_score}, "
            f"anomalies={list(o.anomalies)}, recommendations={list(o.recommendations)}"
            + (f", error={o.error}" if o.error else "")
            for o in history.observations
        )
    lines.extend(notes)
    return "\n".join(lines), bool(notes)


def _check_credentials(settings: LlmSettings, options: dict[str, Any]) -> None:
    """Refuse settings whose every call would fail for want of a key, before any is made:
    otherwise each result of the run gets a stored "HTTP 401" observation instead of a verdict.

    A key is needed by OpenAI's endpoint (the default), and by any endpoint for which a key's
    variable was named (``api_key_env`` given): a local server (Ollama, vLLM) configured by its
    ``base_url`` alone, or with ``api_key_env = ""``, is called without one."""
    if settings.api_key_env and os.environ.get(settings.api_key_env):
        return
    if settings.base_url.rstrip("/") == _OPENAI_URL:
        raise ConfigError(
            "the llm watcher has no endpoint and no key: set [tool.testledger.watcher.llm] "
            "base_url (an OpenAI-compatible endpoint) or the environment variable "
            f"{settings.api_key_env or 'OPENAI_API_KEY'} (named by api_key_env) for {_OPENAI_URL}"
        )
    if options.get("api_key_env"):
        raise ConfigError(
            f"[tool.testledger.watcher.llm] api_key_env names {settings.api_key_env}, which is "
            'not set in the environment (api_key_env = "" for an endpoint that needs no key)'
        )


def create(options: dict[str, Any]) -> LlmWatcher:
    """The entry point factory: options are the fields of LlmSettings. Raises ConfigError for
    bad options, and for settings that cannot call (see :func:`_check_credentials`)."""
    known = set(LlmSettings.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"[tool.testledger.watcher.llm] unknown key(s): {', '.join(unknown)}")
    try:
        settings = LlmSettings(**options)
        if settings.concurrency < 1 or settings.retries < 0 or settings.max_input_chars < 1:
            raise ValueError("concurrency and max_input_chars must be >= 1, retries >= 0")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[tool.testledger.watcher.llm] {exc}") from exc
    _check_credentials(settings, options)
    return LlmWatcher(settings)
