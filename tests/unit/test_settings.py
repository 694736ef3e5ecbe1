"""Settings: parsing, validation, redaction, and every place derived from their declaration.

The README's configuration table is written by hand for readers; the test below holds it to the
declaration, so a variable or a default changed in code cannot leave the README behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoints.cli import main
from entrypoints.settings import DECLARED, Declared, Settings, SettingsError

README = Path(__file__).parents[2] / "README.md"
EMPTY_DEFAULT = "(empty)"  # how the README writes a default that is the empty string


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


def _declared(variable: str) -> Declared:
    return next(declared for declared in DECLARED if declared.variable == variable)


def test_defaults_of_the_dataclass_are_what_the_environment_defaults_parse_to() -> None:
    # One declaration gives both; a default the parser would refuse or change fails here.
    assert Settings() == Settings.from_env({})
    for declared in DECLARED:
        assert declared.parse(declared.default_text) == declared.default, declared.variable


def test_variables_are_named_after_their_fields() -> None:
    assert _declared("COUNTER_IDEMPOTENCY_TTL_SECONDS").name == "idempotency_ttl_seconds"
    assert len({declared.variable for declared in DECLARED}) == len(DECLARED)


def test_help_shows_the_bounds_the_parser_enforces() -> None:
    port = _declared("COUNTER_PORT")
    assert port.help.endswith("(1-65535)")
    assert port.parse("65535") == 65535
    with pytest.raises(SettingsError, match=r"\(1-65535\)"):
        port.parse("65536")
    assert _declared("COUNTER_LOG_FORMAT").help.endswith("(text, json)")
    assert _declared("COUNTER_REDIS_URL").help.endswith("(redis://, rediss:// or unix://)")
    assert _declared("COUNTER_FAST_PATH").help.endswith("the handlers' full pipeline")  # no bounds


def test_the_only_secret_is_the_admin_token() -> None:
    assert [declared.variable for declared in DECLARED if declared.secret] == ["COUNTER_ADMIN_TOKEN"]


def test_every_setting_has_an_option_in_help_except_the_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--help"],
        env={**os.environ, "COLUMNS": "1000"},  # no wrapping, which could split a help text at a hyphen
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = " ".join(result.stdout.split())  # a long option name puts its help on the next line
    for declared in DECLARED:
        option = "--" + declared.name.replace("_", "-")
        if declared.secret:
            assert option not in text
            assert f"{declared.variable}: {declared.help}; read from the environment only" in text
            continue
        default = declared.default_text or "empty"
        assert f"{option} VALUE {declared.help} [{declared.variable}, default: {default}]" in text
    assert "(default: None)" not in text


def _readme_configuration_rows() -> list[list[str]]:
    """The cells of the table in the README's "## Configuration" section, header excluded."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["variable", "default", "meaning"]
    # A cell never holds a pipe today; splitting on the first two keeps `|` usable in a meaning.
    return [[cell.strip() for cell in line.strip("|").split("|", 2)] for line in lines[2:]]


def test_readme_configuration_table_matches_the_declaration() -> None:
    rows = _readme_configuration_rows()
    documented = {}
    for variable_cell, default_cell, meaning in rows:
        variable = variable_cell.strip("`")
        assert variable not in documented, f"{variable} is in the README table twice"
        documented[variable] = (default_cell, meaning)
    declared_variables = {declared.variable: declared for declared in DECLARED}
    mentioned = set(re.findall(r"COUNTER_[A-Z0-9_]+", "\n".join("|".join(row) for row in rows)))
    assert mentioned <= declared_variables.keys(), (
        f"undeclared in the README: {mentioned - declared_variables.keys()}"
    )
    for variable, declared in declared_variables.items():
        assert variable in documented, f"{variable} is missing from the README table"
        default_cell, meaning = documented[variable]
        expected = f"`{declared.default_text}`" if declared.default_text else EMPTY_DEFAULT
        assert default_cell == expected, f"{variable}: README says {default_cell}, code says {expected}"
        if declared.secret:
            assert "environment only" in meaning.lower(), f"{variable} is a secret: say it has no option"


def test_settings_command_prints_effective_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for declared in DECLARED:
        monkeypatch.delenv(declared.variable, raising=False)
    monkeypatch.setenv("COUNTER_ADMIN_TOKEN", "hunter2")
    assert main(["settings"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == [declared.name for declared in DECLARED]
    assert printed["backend"] == "sqlite"
    assert printed["admin_token"] == "<set>"


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
