"""The pipeline's environment detection (deploy/scripts/detect_env.py), over a table of refs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "scripts" / "detect_env.py"
SHA = "0123456789abcdef0123456789abcdef01234567"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("detect_env", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


detect_env = _load_script()


def detect(ref: str, sha: str = SHA, repository: str | None = "Acme/Counter-Web-Server") -> dict[str, str]:
    outputs: dict[str, str] = detect_env.detect(ref, sha, repository).outputs()
    return outputs


@pytest.mark.parametrize(
    ("ref", "environment", "image_tag", "deploy", "push"),
    [
        ("refs/tags/v1.2.3", "prod", "1.2.3", "true", "true"),
        ("refs/tags/v0.1.0", "prod", "0.1.0", "true", "true"),
        ("refs/tags/v10.20.30", "prod", "10.20.30", "true", "true"),
        ("refs/tags/v1.2.3-rc.1", "preprod", "1.2.3-rc.1", "true", "true"),
        ("refs/tags/v2.0.0-rc.12", "preprod", "2.0.0-rc.12", "true", "true"),
        ("refs/tags/v1.0.0-rc.0", "preprod", "1.0.0-rc.0", "true", "true"),
        ("refs/heads/main", "dev", "main-0123456", "true", "true"),
        ("refs/heads/feature/login", "none", "feature-login-0123456", "false", "false"),
        ("refs/heads/Fix_Bug-42", "none", "fix-bug-42-0123456", "false", "false"),
        ("refs/heads/renovate/redis-8.x", "none", "renovate-redis-8-x-0123456", "false", "false"),
        ("refs/heads/--odd--name--", "none", "odd-name-0123456", "false", "false"),
        ("refs/heads/main-backup", "none", "main-backup-0123456", "false", "false"),
        ("refs/heads/Main", "none", "main-0123456", "false", "false"),
        ("refs/heads/v1.2.3", "none", "v1-2-3-0123456", "false", "false"),
        ("refs/heads/dev", "none", "dev-0123456", "false", "false"),
    ],
)
def test_ref_decides_environment_and_image_tag(
    ref: str, environment: str, image_tag: str, deploy: str, push: str
) -> None:
    outputs = detect(ref)
    assert outputs["environment"] == environment
    assert outputs["image_tag"] == image_tag
    assert outputs["deploy"] == deploy
    assert outputs["push"] == push


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("refs/tags/v1.2", "malformed version tag 'v1.2'"),
        ("refs/tags/v1.2.3.4", "malformed version tag"),
        ("refs/tags/v01.2.3", "malformed version tag"),
        ("refs/tags/v1.2.3-rc", "malformed version tag"),
        ("refs/tags/v1.2.3-rc.01", "malformed version tag"),
        ("refs/tags/v1.2.3-beta.1", "malformed version tag"),
        ("refs/tags/v1.2.3-RC.1", "malformed version tag"),
        ("refs/tags/v1.2.3+build.5", "malformed version tag"),
        ("refs/tags/V1.2.3", "malformed version tag"),
        ("refs/tags/1.2.3", "not a release tag"),
        ("refs/tags/release-2024", "not a release tag"),
        ("refs/tags/latest", "not a release tag"),
        ("refs/pull/42/merge", "neither a branch"),
        ("main", "neither a branch"),
        ("refs/heads/", "neither a branch"),
        ("refs/tags/", "neither a branch"),
        ("refs/remotes/origin/main", "neither a branch"),
        ("", "no git ref given"),
        ("refs/heads/___", "no letter or digit"),
    ],
)
def test_ref_that_fits_no_rule_fails_with_a_clear_message(ref: str, message: str) -> None:
    with pytest.raises(detect_env.DetectionError, match=message):
        detect(ref)


@pytest.mark.parametrize(
    ("sha", "message"),
    [
        ("", "no commit given"),
        ("xyz1234", "not a git commit id"),
        ("abc12", "not a git commit id"),
        ("0" * 41, "not a git commit id"),
    ],
)
def test_invalid_commit_fails(sha: str, message: str) -> None:
    with pytest.raises(detect_env.DetectionError, match=message):
        detect("refs/heads/main", sha=sha)


def test_short_sha_is_lower_case_and_seven_digits() -> None:
    assert detect("refs/heads/main", sha="ABCDEF0123")["image_tag"] == "main-abcdef0"


def test_long_branch_names_give_a_valid_docker_tag() -> None:
    tag = detect("refs/heads/" + "very-long-branch-name/" * 10)["image_tag"]
    assert len(tag) <= 128
    assert tag.endswith("-0123456")
    assert "--" not in tag


def test_image_name_is_the_lower_case_ghcr_repository() -> None:
    assert detect("refs/heads/main")["image"] == "ghcr.io/acme/counter-web-server"
    assert detect("refs/heads/main", repository=None)["image"] == "counter-web-server"
    with pytest.raises(detect_env.DetectionError, match="owner/name"):
        detect("refs/heads/main", repository="not a repository")


@pytest.mark.parametrize(
    ("ref", "chart_version"),
    [
        ("refs/tags/v1.2.3", "1.2.3"),
        ("refs/tags/v1.2.3-rc.2", "1.2.3-rc.2"),
        ("refs/heads/main", "0.0.0-main-0123456"),
        ("refs/heads/feature/x", "0.0.0-feature-x-0123456"),
    ],
)
def test_chart_version_is_semver(ref: str, chart_version: str) -> None:
    assert detect(ref)["chart_version"] == chart_version


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_cli_reads_github_variables_and_prints_outputs_on_stdout() -> None:
    result = _run({"GITHUB_REF": "refs/tags/v1.4.0-rc.3", "GITHUB_SHA": SHA, "GITHUB_REPOSITORY": "a/b"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "environment=preprod",
        "deploy=true",
        "push=true",
        "image_tag=1.4.0-rc.3",
        "image=ghcr.io/a/b",
        "chart_version=1.4.0-rc.3",
    ]


def test_cli_appends_to_github_output_and_summary(tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.write_text("earlier=kept\n")
    summary = tmp_path / "summary.md"
    result = _run(
        {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)},
        "--ref",
        "refs/heads/topic/x",
        "--sha",
        SHA,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = output.read_text().splitlines()
    assert lines[0] == "earlier=kept"
    assert "environment=none" in lines
    assert "image_tag=topic-x-0123456" in lines
    assert "push=false" in lines
    assert "`topic-x-0123456`" in summary.read_text()


def test_cli_fails_with_a_clear_message_and_writes_no_output(tmp_path: Path) -> None:
    output = tmp_path / "output"
    result = _run({"GITHUB_OUTPUT": str(output), "GITHUB_REF": "refs/tags/v1.2", "GITHUB_SHA": SHA})
    assert result.returncode == 1
    assert "malformed version tag 'v1.2'" in result.stderr
    assert not output.exists()


def test_cli_without_a_ref_says_what_to_set() -> None:
    result = _run({}, "--sha", SHA)
    assert result.returncode == 1
    assert "set GITHUB_REF or pass --ref" in result.stderr
