"""Settings come from the environment once, and bad values stop start-up loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import PostgresUrl, Settings
from gateway.exceptions import ConfigError


def test_defaults_run_the_demo() -> None:
    settings = Settings.from_env({})
    assert settings.demo_mode
    assert settings.session_cookie == "wb_session"
    assert settings.session_max_age == 1_209_600
    assert settings.messaging_db == Path("data/messaging.db")


def test_reads_and_types_every_variable(tmp_path: Path) -> None:
    app_db = tmp_path / "app.db"
    app_db.touch()
    settings = Settings.from_env(
        {
            "WB_SESSION_SECRET": "new, old ,",
            "WB_SESSION_COOKIE": "session",
            "WB_SESSION_MAX_AGE": "60",
            "WB_MESSAGING_DB": str(tmp_path / "m.db"),
            "WB_APP_DB": str(app_db),
            "WB_ALLOWED_ORIGINS": "https://app.example.org/",
            "WB_HEARTBEAT_SECONDS": "2.5",
        }
    )
    assert settings.session_secrets == ("new", "old")
    assert settings.session_max_age == 60
    assert settings.app_db == app_db
    assert not settings.demo_mode
    assert settings.allowed_origins == ("https://app.example.org",)
    assert settings.heartbeat_seconds == 2.5


@pytest.mark.parametrize(
    ("environ", "mentions"),
    [
        ({"WB_SESSION_MAX_AGE": "fortnight"}, "WB_SESSION_MAX_AGE"),
        ({"WB_SESSION_MAX_AGE": "-1"}, "WB_SESSION_MAX_AGE"),
        ({"WB_SESSION_SECRET": " , "}, "WB_SESSION_SECRET"),
        ({"WB_APP_DB": "/nonexistent/app.db", "WB_SESSION_SECRET": "s"}, "WB_APP_DB"),
        ({"WB_SQLITE_SYNCHRONOUS": "OFF"}, "WB_SQLITE_SYNCHRONOUS"),
        ({"WB_ALLOWED_ORIGINS": "app.example.org"}, "WB_ALLOWED_ORIGINS"),
        ({"WB_AUTH_CACHE_SECONDS": "60"}, "WB_AUTH_CACHE_SECONDS"),
        ({"WB_MESSAGING_DB": "postgresql://wb@db"}, "WB_MESSAGING_DB"),  # which database?
        ({"WB_MESSAGING_DB": "postgresql://wb@db/x?nosuchoption=1"}, "WB_MESSAGING_DB"),
        ({"WB_MESSAGING_DB": "mysql://wb@db/messaging"}, "WB_MESSAGING_DB"),
        ({"WB_MESSAGING_DB": "sqlite://"}, "WB_MESSAGING_DB"),
        ({"WB_MESSAGING_DB": "sqlite:///:memory:"}, "WB_MESSAGING_DB"),
        ({"WB_MESSAGING_DB": ""}, "WB_MESSAGING_DB"),
        ({"WB_APP_DB": "redis://db/0"}, "WB_APP_DB"),
        ({"WB_SESSION_CHECK_SECONDS": "5"}, "WB_SESSION_CHECK_SECONDS"),
    ],
)
def test_bad_values_are_refused_by_name(environ: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        Settings.from_env(environ)


def test_a_database_may_be_named_as_whiteballoons_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WhiteBalloon's `DATABASE_URL` (sqlite:///data/app.db) can be pasted as it is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "app.db").touch()
    settings = Settings.from_env(
        {
            "WB_APP_DB": "sqlite:///data/app.db",
            "WB_MESSAGING_DB": f"sqlite+pysqlite:///{tmp_path}/gateway/messaging.db",
        }
    )
    assert settings.app_db == Path("data/app.db")
    assert settings.messaging_db == tmp_path / "gateway" / "messaging.db"


def test_a_database_url_of_another_kind_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="'mysql' database"):
        Settings.from_env({"WB_MESSAGING_DB": "mysql://wb@db/messaging"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://wb:s3cret@db.internal:5433/messaging",
        "postgres://wb:s3cret@db.internal:5433/messaging",
        "postgresql+psycopg://wb:s3cret@db.internal:5433/messaging",  # WhiteBalloon's form
        "postgresql+asyncpg://wb:s3cret@db.internal:5433/messaging",
    ],
)
def test_postgresql_urls_in_whiteballoons_forms_are_taken(tmp_path: Path, url: str) -> None:
    """The driver part is ignored; the password never shows in what is printed or logged."""
    app_db = tmp_path / "app.db"
    app_db.touch()
    settings = Settings.from_env({"WB_MESSAGING_DB": url, "WB_APP_DB": url})
    expected = "postgresql://wb:s3cret@db.internal:5433/messaging"
    assert settings.messaging_db == PostgresUrl(expected)
    assert settings.app_db == PostgresUrl(expected)
    assert "s3cret" not in str(settings.messaging_db)
    assert "s3cret" not in repr(settings)
    assert settings.data_dir == Path("data")


def test_a_real_directory_needs_no_secret(tmp_path: Path) -> None:
    """WhiteBalloon's own session cookie is unsigned: WB_APP_DB alone is a working gateway."""
    app_db = tmp_path / "app.db"
    app_db.touch()
    settings = Settings.from_env({"WB_APP_DB": str(app_db)})
    assert settings.session_secrets is None
    assert settings.app_session_cookie == "wb_session_id"


@pytest.mark.parametrize("value", ["5.5", "-1", "nan"])
def test_the_auth_cache_is_capped_at_five_seconds(value: str) -> None:
    with pytest.raises(ConfigError, match="WB_AUTH_CACHE_SECONDS"):
        Settings.from_env({"WB_AUTH_CACHE_SECONDS": value})


@pytest.mark.parametrize("value", ["messages", "/a//b", "/m?x"])
def test_a_root_path_must_be_a_path(value: str) -> None:
    with pytest.raises(ConfigError, match="WB_ROOT_PATH"):
        Settings.from_env({"WB_ROOT_PATH": value})


def test_every_setting_is_documented() -> None:
    text = Settings.describe()
    for name in ("WB_SESSION_SECRET", "WB_APP_DB", "WB_MESSAGING_DB", "WB_SESSION_MAX_AGE"):
        assert name in text


def test_a_real_secret_without_a_directory_refuses_to_run_the_demo() -> None:
    # The demo signs anyone in; with the main app's secret those would be its cookies.
    with pytest.raises(ConfigError, match="WB_SESSION_SECRET is set but WB_APP_DB is not"):
        Settings.from_env({"WB_SESSION_SECRET": "the-main-apps-secret"})


@pytest.mark.parametrize(
    ("environ", "mentions"),
    [
        ({"WB_APP_DB": "", "WB_SESSION_SECRET": "s"}, "WB_APP_DB='' is invalid: is empty"),
        ({"WB_AUTH_CACHE_SECONDS": "nan"}, "WB_AUTH_CACHE_SECONDS"),
        ({"WB_EVENT_RETENTION_DAYS": "1e308"}, "WB_EVENT_RETENTION_DAYS"),
    ],
)
def test_values_that_would_fail_later_are_refused_now(
    environ: dict[str, str], mentions: str
) -> None:
    with pytest.raises(ConfigError, match=mentions):
        Settings.from_env(environ)
