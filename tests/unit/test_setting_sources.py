"""Where settings come from besides their variables: `_FILE` secrets, and the warning about
`COUNTER_*` variables that are no setting. Also `counter --version`."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from entrypoints.cli import main
from entrypoints.setting_sources import unknown_variables
from entrypoints.settings import DECLARED, Settings, SettingsError, known_variables

TOKEN = "s3cret-from-a-file"


def test_the_settings_that_may_come_from_a_file() -> None:
    assert {d.file_variable for d in DECLARED if d.file_variable} == {
        "COUNTER_ADMIN_TOKEN_FILE",
        "COUNTER_REDIS_URL_FILE",
    }
    assert all(d.file_variable for d in DECLARED if d.secret)


@pytest.mark.parametrize("content", [TOKEN, f"{TOKEN}\n", f"{TOKEN}\r\n", f"  {TOKEN}\n"])
def test_a_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path: Path, content: str) -> None:
    secret = tmp_path / "admin-token"
    secret.write_bytes(content.encode())
    assert Settings.from_env({"COUNTER_ADMIN_TOKEN_FILE": str(secret)}).admin_token == TOKEN


def test_the_redis_url_is_read_from_its_file_and_checked_like_the_variable(tmp_path: Path) -> None:
    secret = tmp_path / "redis-url"
    secret.write_text("redis://:pa55@redis.example:6379/2\n")
    settings = Settings.from_env({"COUNTER_REDIS_URL_FILE": str(secret)})
    assert settings.redis_url == "redis://:pa55@redis.example:6379/2"
    assert "pa55" not in str(settings.redacted())
    secret.write_text("http://redis.example\n")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"COUNTER_REDIS_URL_FILE": str(secret)})
    assert raised.value.variable == "COUNTER_REDIS_URL"
    assert "must start with redis://" in str(raised.value)


def test_a_variable_and_its_file_both_set_is_refused_naming_both(tmp_path: Path) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text(TOKEN)
    for value in ("other", ""):
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"COUNTER_ADMIN_TOKEN": value, "COUNTER_ADMIN_TOKEN_FILE": str(secret)})
        message = str(raised.value)
        assert "COUNTER_ADMIN_TOKEN and COUNTER_ADMIN_TOKEN_FILE are both set" in message
        assert TOKEN not in message


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing", "No such file or directory"),
        (lambda d: d, "Is a directory"),
        (lambda d: _write(d / "big", b"x" * (64 * 1024 + 1)), "larger than 64 KiB"),
        (lambda d: _write(d / "latin1", b"caf\xe9"), "is not UTF-8 text"),
    ],
    ids=["missing", "directory", "too large", "not utf-8"],
)
def test_an_unreadable_file_names_the_variable_and_the_path(tmp_path: Path, make: object, words: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"COUNTER_ADMIN_TOKEN_FILE": str(path)})
    assert raised.value.variable == "COUNTER_ADMIN_TOKEN_FILE"
    assert str(path) in str(raised.value)
    assert words in str(raised.value)


def test_an_empty_file_variable_is_refused() -> None:
    with pytest.raises(SettingsError, match="COUNTER_REDIS_URL_FILE: is empty"):
        Settings.from_env({"COUNTER_REDIS_URL_FILE": ""})


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_command_line_option_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "redis-url"
    secret.write_text("redis://from-the-file:6379/0\n")
    monkeypatch.setenv("COUNTER_REDIS_URL_FILE", str(secret))
    monkeypatch.setenv("COUNTER_REDIS_URL", "")  # so that what main() sets is undone after the test
    monkeypatch.delenv("COUNTER_REDIS_URL")
    from entrypoints import cli

    # `serve` would start a server: stop right before, with the settings it would run with.
    seen: list[Settings] = []

    def serve(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(cli, "serve", serve)
    assert main(["serve", "--redis-url", "redis://from-the-option:6379/0"]) == 0
    assert seen[0].redis_url == "redis://from-the-option:6379/0"
    assert seen[0].admin_token == ""


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("COUNTER_WORKER", "COUNTER_WORKERS"),
        ("COUNTER_REDIS_ULR", "COUNTER_REDIS_URL"),
        ("COUNTER_LOGLEVEL", "COUNTER_LOG_LEVEL"),
        ("COUNTER_ADMIN_TOKEN_FIEL", "COUNTER_ADMIN_TOKEN_FILE"),
        ("COUNTER_RATE_LIMIT", "COUNTER_RATE_LIMIT_PER_CLIENT"),
        ("COUNTER_CORS_ORIGINS", "COUNTER_CORS_ALLOW_ORIGINS"),
        ("COUNTER_NONSENSE", None),
    ],
)
def test_an_unknown_variable_is_named_with_the_closest_setting(variable: str, suggestion: str | None) -> None:
    [unknown] = unknown_variables({variable: "1", "COUNTER_PORT": "9000", "HOME": "/root"}, known_variables())
    assert unknown.variable == variable
    assert unknown.suggestion == suggestion
    assert unknown.message.startswith(f"{variable} is not a setting of this service and is ignored")
    if suggestion:
        assert unknown.message.endswith(f"; did you mean {suggestion}?")


def test_every_unknown_variable_is_named_and_known_ones_and_kubernetes_service_links_are_not() -> None:
    environ = {
        "COUNTER_PORT": "8000",
        "COUNTER_ADMIN_TOKEN_FILE": "/run/secrets/token",
        "COUNTER_WROKERS": "2",
        "COUNTER_BACKEND_": "redis",
        # What Kubernetes adds for the Services `counter` and `counter-redis` in the namespace.
        "COUNTER_SERVICE_HOST": "10.96.0.10",
        "COUNTER_SERVICE_PORT": "80",
        "COUNTER_SERVICE_PORT_HTTP": "80",
        "COUNTER_PORT_80_TCP": "tcp://10.96.0.10:80",
        "COUNTER_PORT_80_TCP_ADDR": "10.96.0.10",
        "COUNTER_PORT_80_TCP_PORT": "80",
        "COUNTER_PORT_80_TCP_PROTO": "tcp",
        "COUNTER_REDIS_PORT": "tcp://10.96.0.11:6379",
        "COUNTER_REDIS_SERVICE_HOST": "10.96.0.11",
        "COUNTER_REDIS_PORT_6379_TCP_ADDR": "10.96.0.11",
        "COUNTER_METRICS_PORT": "9090",  # no service link: that would be tcp://...
        "COUNTERS": "x",  # not a COUNTER_ variable
    }
    unknown = unknown_variables(environ, known_variables())
    assert [u.variable for u in unknown] == ["COUNTER_BACKEND_", "COUNTER_METRICS_PORT", "COUNTER_WROKERS"]
    assert [u.suggestion for u in unknown] == ["COUNTER_BACKEND", None, "COUNTER_WORKERS"]


def test_counter_settings_warns_about_unknown_variables_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COUNTER_WORKER", "2")
    assert main(["settings"]) == 0
    captured = capsys.readouterr()
    warning = (
        "counter: COUNTER_WORKER is not a setting of this service and is ignored;"
        " did you mean COUNTER_WORKERS?"
    )
    assert warning in captured.err.splitlines()
    assert "COUNTER_WORKER" not in captured.out


def test_counter_version_prints_the_package_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == f"counter {version('counter-web-server')}"
