from __future__ import annotations

import json
import subprocess
import sys

import pytest

from entrypoints.cli import main
from entrypoints.settings import SPECS, Settings, SettingsError


def test_defaults_are_the_embedded_sqlite_store_on_localhost() -> None:
    settings = Settings.from_env({})
    assert (settings.backend, settings.host, settings.port, settings.workers) == (
        "sqlite",
        "127.0.0.1",
        8000,
        1,
    )
    assert settings.sqlite_path == "data/counter.db"
    assert settings.idempotency_ttl_seconds == 86400


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "COUNTER_BACKEND": "Redis",
            "COUNTER_PORT": "9000",
            "COUNTER_WORKERS": "4",
            "COUNTER_LOG_FORMAT": "json",
            "COUNTER_ACCESS_LOG": "false",
            "COUNTER_CONFIGMAP_COALESCE": "no",
            "COUNTER_IDEMPOTENCY_TTL_SECONDS": "60",
        }
    )
    assert settings.backend == "redis"
    assert (settings.port, settings.workers) == (9000, 4)
    assert settings.log_format == "json"
    assert settings.access_log is False
    assert settings.configmap_coalesce is False
    assert settings.idempotency_ttl_seconds == 60


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("COUNTER_BACKEND", "nope", "sqlite, redis, memory, configmap"),
        ("COUNTER_PORT", "http", "whole number"),
        ("COUNTER_PORT", "70000", "out of range"),
        ("COUNTER_WORKERS", "0", "out of range"),
        ("COUNTER_LOG_LEVEL", "loud", "debug"),
        ("COUNTER_LOG_FORMAT", "xml", "text, json"),
        ("COUNTER_ACCESS_LOG", "maybe", "boolean"),
        ("COUNTER_REDIS_URL", "http://x", "redis://"),
        ("COUNTER_IDEMPOTENCY_TTL_SECONDS", "-1", "greater than 0"),
        ("COUNTER_SQLITE_PATH", "", "empty"),
        ("COUNTER_MAX_BODY_BYTES", "1", "out of range"),
    ],
)
def test_a_wrong_value_names_the_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable)
    assert words in str(raised.value)


def test_memory_store_refuses_several_workers() -> None:
    with pytest.raises(SettingsError, match="one process") as raised:
        Settings.from_env({"COUNTER_BACKEND": "memory", "COUNTER_WORKERS": "2"})
    assert raised.value.variable == "COUNTER_WORKERS"


def test_redacted_hides_secrets() -> None:
    settings = Settings.from_env(
        {"COUNTER_ADMIN_TOKEN": "hunter2", "COUNTER_REDIS_URL": "redis://user:pass@redis.example:6379/0"}
    )
    text = json.dumps(settings.redacted())
    assert "hunter2" not in text
    assert "pass" not in text
    assert "redis.example:6379/0" in text


def test_every_setting_has_an_option_in_help_except_the_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = result.stdout
    for spec in SPECS:
        assert spec.variable in text or spec.variable == "COUNTER_ADMIN_TOKEN"
    assert "--admin-token" not in text
    assert "--backend" in text
    assert "--workers" in text


def test_settings_command_prints_effective_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["backend"] in {"sqlite", "redis", "memory", "configmap"}


def test_wrong_setting_exits_non_zero_with_one_line_naming_the_variable() -> None:
    # A real process, as a user would run it: one line on stderr, exit status 2.
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve"],
        env={"COUNTER_BACKEND": "nope", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "COUNTER_BACKEND" in lines[0]
    assert "nope" in lines[0]
