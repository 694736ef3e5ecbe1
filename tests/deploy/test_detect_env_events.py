"""What the event that started a run changes in deploy/scripts/detect_env.py: a pull request is never
pushed nor deployed, a dispatched run goes where it is asked only if its ref may go there."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from types import ModuleType

import pytest

from tests.deploy.deploy_helpers import SCRIPTS

SCRIPT = SCRIPTS / "detect_env.py"
SHA = "0123456789abcdef0123456789abcdef01234567"
REPOSITORY = "Acme/Counter-Web-Server"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("detect_env_events", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class body runs
    spec.loader.exec_module(module)
    return module


detect_env = _load()


def outputs(event: str, ref: str, *, head_ref: str = "", requested: str = "auto") -> dict[str, str]:
    deployment = detect_env.detect_event(event, ref, SHA, REPOSITORY, head_ref=head_ref, requested=requested)
    found: dict[str, str] = deployment.outputs()
    return found


@pytest.mark.parametrize("head_ref", ["feature/login", "main", "v1.2.3"])
def test_a_pull_request_is_built_and_tested_only(head_ref: str) -> None:
    # Even a fork's branch named main, or one named like a release, pushes nothing.
    found = outputs("pull_request", "refs/pull/42/merge", head_ref=head_ref)
    assert found["environment"] == "none"
    assert found["deploy"] == "false"
    assert found["push"] == "false"
    assert found["image_tag"].startswith("pr-")
    assert found["image_tag"].endswith("-0123456")
    assert found["chart_version"] == f"0.0.0-{found['image_tag']}"


def test_a_pull_request_without_its_head_branch_fails() -> None:
    with pytest.raises(detect_env.DetectionError, match="GITHUB_HEAD_REF"):
        outputs("pull_request", "refs/pull/42/merge")


@pytest.mark.parametrize(
    ("ref", "requested", "environment"),
    [
        ("refs/heads/main", "auto", "dev"),
        ("refs/tags/v1.2.3", "auto", "prod"),
        ("refs/heads/feature/x", "auto", "none"),
        ("refs/heads/feature/x", "dev", "dev"),
        ("refs/tags/v1.2.3-rc.1", "dev", "dev"),
        ("refs/tags/v1.2.3-rc.1", "preprod", "preprod"),
        ("refs/tags/v1.2.3", "preprod", "preprod"),
        ("refs/tags/v1.2.3", "prod", "prod"),
        ("refs/heads/main", "none", "none"),
    ],
)
def test_a_dispatched_run_goes_where_it_is_asked(ref: str, requested: str, environment: str) -> None:
    found = outputs("workflow_dispatch", ref, requested=requested)
    assert found["environment"] == environment
    expected = "false" if environment == "none" else "true"
    assert found["deploy"] == expected
    assert found["push"] == expected


@pytest.mark.parametrize(
    ("ref", "requested", "message"),
    [
        ("refs/heads/main", "prod", "prod deploys a vX.Y.Z tag only"),
        ("refs/tags/v1.2.3-rc.1", "prod", "prod deploys a vX.Y.Z tag only"),
        ("refs/heads/feature/x", "preprod", "preprod deploys a vX.Y.Z or vX.Y.Z-rc.N tag only"),
        ("refs/heads/main", "staging", "not one of auto, none, dev, preprod, prod"),
        ("refs/tags/v1.2", "dev", "malformed version tag"),
    ],
)
def test_a_dispatched_run_may_not_send_a_ref_where_it_does_not_belong(
    ref: str, requested: str, message: str
) -> None:
    with pytest.raises(detect_env.DetectionError, match=message):
        outputs("workflow_dispatch", ref, requested=requested)


def test_push_keeps_the_ref_table_and_other_events_fail() -> None:
    assert (
        outputs("push", "refs/heads/main") == detect_env.detect("refs/heads/main", SHA, REPOSITORY).outputs()
    )
    with pytest.raises(detect_env.DetectionError, match="not one the pipeline runs on"):
        outputs("pull_request_target", "refs/heads/main")


def test_cli_reads_the_event_the_head_branch_and_the_requested_environment() -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}
    base = {**clean, "GITHUB_SHA": SHA, "GITHUB_REPOSITORY": "a/b"}
    pull = {
        **base,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_HEAD_REF": "x",
    }
    dispatch = {
        **base,
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_REF": "refs/heads/main",
        "REQUESTED_ENVIRONMENT": "prod",
    }
    ran = [
        subprocess.run(
            [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=30
        )
        for env in (pull, dispatch)
    ]
    assert ran[0].returncode == 0, ran[0].stderr
    assert "push=false" in ran[0].stdout.splitlines()
    assert "image_tag=pr-x-0123456" in ran[0].stdout.splitlines()
    assert ran[1].returncode == 1
    assert "prod deploys a vX.Y.Z tag only" in ran[1].stderr
