"""The assistant's plain-code parts: configuration, rendering, accounting, caching."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

# conftest.py sits beside this file in the demo project, which pytest puts on sys.path; in
# testledger's own source tree, where mypy reads it, it is not an importable module.
from conftest import PRICES  # type: ignore[import-not-found,unused-ignore]


def test_parse_config(tmp_path: Path) -> None:
    path = tmp_path / "assistant.json"
    path.write_text(json.dumps({"model": "glm-4.5-air", "max_tokens": 1024}), encoding="utf-8")
    config = json.loads(path.read_text(encoding="utf-8"))
    assert config == {"model": "glm-4.5-air", "max_tokens": 1024}


def test_render_report(iteration: int) -> None:
    # Commit 8 switches the renderer to a sandboxed template engine: five times slower, and
    # nothing fails - only the duration history shows it.
    time.sleep(0.1 if iteration >= 8 else 0.02)
    html = "<h1>{title}</h1>".format(title="Weekly usage")
    assert html == "<h1>Weekly usage</h1>"


@pytest.mark.parametrize("model", sorted(PRICES))
def test_price_table(model: str) -> None:
    price_in, price_out = PRICES[model]
    assert 0 < price_in <= price_out


def test_cache_roundtrip(tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    cache.write_text(json.dumps({"q:weather paris": "18 °C"}), encoding="utf-8")
    assert json.loads(cache.read_text(encoding="utf-8"))["q:weather paris"] == "18 °C"


@pytest.mark.skip(reason="needs a GPU runner")
def test_embeddings_on_gpu() -> None:
    raise AssertionError("not run without a GPU")
