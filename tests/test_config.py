"""Settings precedence and URL handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from testledger import ConfigError, load_settings, mask_url
from testledger.store.engine import mask_urls_in, normalize_url


def write_pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(body)
    return path


def test_default_is_a_sqlite_file_beside_the_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "[project]\nname = 'x'\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    settings = load_settings(start=nested, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path / '.testledger' / 'ledger.db'}"
    assert settings.results_dir == tmp_path / ".testledger" / "results"


@pytest.mark.parametrize(
    ("argument", "environ", "expected"),
    [
        ("sqlite:///arg.db", {"TESTLEDGER_DATABASE_URL": "sqlite:///env.db"}, "sqlite:///arg.db"),
        (None, {"TESTLEDGER_DATABASE_URL": "sqlite:///env.db"}, "sqlite:///env.db"),
        (None, {}, "postgresql://u@h/from-pyproject"),
    ],
    ids=["argument-wins", "environment-next", "pyproject-last"],
)
def test_precedence(
    tmp_path: Path, argument: str | None, environ: dict[str, str], expected: str
) -> None:
    write_pyproject(
        tmp_path,
        '[tool.testledger]\ndatabase_url = "postgresql://u@h/from-pyproject"\n'
        'results_dir = "out/results"\nsuite = "validation"\n',
    )
    settings = load_settings(argument, start=tmp_path, environ=environ)
    assert settings.database_url == expected
    assert settings.results_dir == tmp_path / "out" / "results"
    assert settings.suite == "validation"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[tool.testledger]\ndatabse_url = 'x'\n", "unknown [tool.testledger] key(s): databse_url"),
        ("[tool.testledger]\nbatch_size = 0\n", "batch_size must be a positive integer"),
        ("[tool.testledger\n", "not valid TOML"),
    ],
)
def test_bad_configuration_is_reported_with_its_file(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write_pyproject(tmp_path, body)
    with pytest.raises(ConfigError, match=str(path).replace(".", r"\.")) as raised:
        load_settings(start=tmp_path, environ={})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u:p@db.supabase.co:5432/postgres", "postgresql+psycopg"),
        ("postgresql://u:p@localhost/ledger", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
        ("results/ledger.db", "sqlite"),
    ],
)
def test_urls_get_testledgers_drivers(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "failed for postgres://postgres.abc:p%40ss@aws-0.pooler.supabase.com:6543/postgres",
            "failed for postgres://postgres.abc:***@aws-0.pooler.supabase.com:6543/postgres",
        ),
        ("host=h password=s3cret user=u", "host=h password=*** user=u"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_passwords_are_masked_in_text(text: str, masked: str) -> None:
    assert mask_urls_in(text) == masked
    assert "s3cret" not in mask_url("postgresql://u:s3cret@h/db")


@pytest.mark.parametrize(
    "text",
    [
        "host=db.example.com port=5432 dbname=ledger user=u password=s3cret",
        "dbname=ledger",
        "  user = me password=s3cret",
        "PASSWORD=s3cret host=h",
    ],
)
def test_a_keyword_connection_string_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        normalize_url(text)
    message = str(raised.value)
    assert "postgresql://" in message and "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize("path", ["ledger.db", "results/host-ledger.db", "my=ledger.db"])
def test_file_names_are_still_sqlite_paths(path: str) -> None:
    assert normalize_url(path).get_backend_name() == "sqlite"


def test_a_keyword_connection_string_as_db_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from testledger.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["--db", "host=127.0.0.1 password=s3cret", "--results-dir", "r", "runs"])
    assert code != 0
    err = capsys.readouterr().err
    assert "postgresql://" in err and "s3cret" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
