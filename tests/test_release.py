"""Release hygiene: one version, pyproject's, read from the package metadata and nowhere written by
hand; a changelog with an Unreleased section and an entry for that version. (.ci/run builds the
wheel, checks it and runs the demo from it.)"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

import testledger

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def test_the_version_is_the_package_metadata() -> None:
    assert testledger.__version__ == version("testledger")
    # An editable install's metadata is pyproject's as it was at install time.
    assert version("testledger") == _pyproject_version(), "reinstall: pip install -e ."


def test_no_module_writes_a_version_by_hand() -> None:
    assignment = re.compile(
        r"^\s*(__version__|VERSION|version)\s*(:[^=\n]*)?=\s*['\"]\d+\.\d+", re.M
    )
    written = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src").rglob("*.py")
        if assignment.search(path.read_text(encoding="utf-8"))
    ]
    assert written == []


def test_the_changelog_has_unreleased_changes_and_the_current_version() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert headings[0] == "Unreleased"
    released = [re.fullmatch(r"(\S+) - \d{4}-\d{2}-\d{2}", heading) for heading in headings[1:]]
    assert all(released), headings
    assert _pyproject_version() in [match.group(1) for match in released if match]
