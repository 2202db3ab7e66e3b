"""Importer for the files an LLM tool-validation suite ("EX-AI" tool_validation_suite) writes.

Shapes read (all JSON, gzip transparently):

* ``results/latest/test_results.json``: ``{"session_start", "tests": [...], "summary", ...}``;
* ``results/test_results.json`` (the report): ``{"summary": {"session_start", ...}, "coverage",
  "failures": [...], "prompt_counter", "performance"}``. It lists only the *failures* in full, so
  every other test comes from ``coverage`` (tool -> variation -> status) with no more detail;
* ``summary.json``: run counters only. On its own it is a summary (it sets the totals of the run
  it summarises, or is a summary-only run); in a run folder, that run's consistency check;
* ``simple_runner_results.json``: one entry per test *script*; its tests are read from each
  script's output, their statuses too, never from the exit code alone (:mod:`.scripts`);
* watcher observation files (one, or a ``watcher_observations/`` folder) and the CSV of
  watcher analyses, each observation placed on the result it judged or reconstructed
  (:mod:`.evidence`); ``api_responses/``, the call history (:mod:`.api_calls`);
* a results folder, all of the above at once (:mod:`.folder`).

Mapping decisions (each one because the data is ambiguous otherwise):

* ``test_id`` is ``"<tool>/<variation>"``; ``provider`` comes from the variation (``basic_glm``
  -> ``glm``), else the config's provider tool lists, else the tool name (``conversation_id_kimi``).
  ``model`` comes from the data (the test entry, the prompt history, the ``api_responses/mcp``
  request the suite saved) and from the config only when it names a single model for the provider:
  the config lists several and says nothing of which one ran, and guessing would be a lie.
* ``started_at`` is ``performance_metrics.start_time`` when present: the entry's ``timestamp`` is
  written *after* the watcher ran (often half a minute later); it is kept as ``recorded_at``.
* Watcher: ``suggestions`` -> recommendations; ``quality_score`` 0 is the watcher's own failure and
  becomes ``quality_score=None`` with an error. The suite's fallback when it could not parse the
  watcher's answer (``"Unable to parse watcher response"``, score 5, confidence 0.5, correctness
  UNKNOWN) is a failure too: that 5 is a placeholder, not a verdict. ``raw`` is always the whole
  observation file.
* Tokens and cost (``prompt_counter.json``): prompt-history entries naming a tool and variation of
  the run are summed onto that result (watcher prompts excluded: they are not the test's usage);
  the counter's totals always go to ``RunInfo.metadata["prompt_counter"]``, and what could not be
  attributed is said in ``ParsedFile.warnings``.
"""

from __future__ import annotations

import re
from pathlib import Path

from testledger.ingest._common import head_text, open_maybe_gzip
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.tool_validation.api_calls import is_api_folder
from testledger.ingest.tool_validation.context import FORMAT, SUITE
from testledger.ingest.tool_validation.entries import build_run, document_kind, load_object
from testledger.ingest.tool_validation.evidence import (
    CSV_HEADER,
    analyses_csv,
    is_observation_folder,
    observations_file,
)
from testledger.ingest.tool_validation.folder import parse_folder, results_file
from testledger.ingest.tool_validation.observations import watcher_from_observation
from testledger.ingest.tool_validation.scripts import parse_simple_runner

__all__ = [
    "FORMAT",
    "PARSE_AHEAD",
    "READS_FOLDERS",
    "SUFFIXES",
    "SUITE",
    "parse",
    "parse_folder",
    "sniff",
    "watcher_from_observation",
]

# The suite's JSON documents are loaded whole (nothing to parse ahead); its results folders, with
# their side files and archived history, are its usual source (see parse_folder).
PARSE_AHEAD = False
READS_FOLDERS = True
SUFFIXES = (".json", ".csv")

_SNIFF = (
    re.compile(r'^\{\s*"tests"\s*:\s*\[\s*\{\s*"tool"\s*:'),
    re.compile(r'^\{\s*"session_start"\s*:\s*"[^"]*"\s*,\s*"(?:tests|total_tests)"\s*:'),
    re.compile(r'^\{\s*"summary"\s*:\s*\{\s*"session_start"\s*:'),
    re.compile(r'^\{\s*"timestamp"\s*:\s*"[^"]*"\s*,\s*"total_scripts"\s*:'),
)
#: A watcher observation file: its test, then its time; the analysis follows.
_OBSERVATION = re.compile(
    r'^\{\s*"tool"\s*:\s*"[^"]*"\s*,\s*"variation"\s*:\s*"[^"]*"\s*,\s*"timestamp"\s*:'
)
_CSV = re.compile(r'^"?' + r'"?\s*,\s*"?'.join(CSV_HEADER) + r'"?\s*(?:,|\r?\n)')


def sniff(path: Path, head: bytes) -> bool:
    """A test_results document (either layout), a summary.json, a simple runner's results, a
    watcher observation file or the CSV of watcher analyses; or a folder of the suite: a results
    folder (``results/``, ``latest/``, an archive, the suite root), ``watcher_observations/`` or
    ``api_responses/``."""
    if path.is_dir():
        return _sniff_folder(path)
    text = head_text(head)
    if _CSV.match(text):
        return True
    if _OBSERVATION.match(text):
        return '"watcher_analysis"' in text
    return any(pattern.search(text) for pattern in _SNIFF)


def _sniff_folder(path: Path) -> bool:
    for root in (path, path / "latest", path / "results", path / "results" / "latest"):
        file = results_file(root) if root.is_dir() else None
        if file is not None:
            try:
                with open_maybe_gzip(file) as stream:
                    return sniff(file, stream.read(4096))
            except (ImportFormatError, OSError, EOFError):
                return False
    return is_api_folder(path) or is_observation_folder(path)


def parse(path: Path) -> ParsedFile:
    """One suite file on its own (its folder's side files are read by :func:`parse_folder`)."""
    path = Path(path)
    if path.is_dir():
        raise ImportFormatError(path, "a results folder: use parse_folder() for its runs")
    with open_maybe_gzip(path) as stream:
        head = head_text(stream.read(512))
    if _CSV.match(head):
        return analyses_csv(path)
    doc = load_object(path, "a tool-validation-suite result file")
    kind = document_kind(doc)
    if kind is None:
        raise ImportFormatError(
            path,
            "not a tool-validation-suite file: expected test_results, summary, "
            "simple_runner_results or watcher observation JSON",
        )
    if kind == "simple_runner":
        return parse_simple_runner(path, doc, [])
    if kind == "observation":
        return observations_file(path, doc)
    return build_run(path, doc, kind, None, [])
