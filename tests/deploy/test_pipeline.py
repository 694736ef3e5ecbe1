"""The GitHub Actions pipeline, offline: zizmor finds nothing, every action is pinned by commit, the
image is built once and that very digest is tested in kind, pushed and deployed, pull requests
never push or deploy, one helm version, and AWS credentials by OIDC or access keys.
Every check has a twin that breaks a copy and asserts that the check names what broke."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import pipeline_rules as rules
from tests.deploy.deploy_helpers import ROOT, SCRIPTS, WORKFLOWS, load_yaml, output_of, run, tool

pytestmark = pytest.mark.integration

WORKFLOW = WORKFLOWS / "ci-cd.yml"
USES_RE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")
PINNED_RE = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
TAG_COMMENT_RE = re.compile(r"\s+# (v\d+\.\d+\.\d+)$")


@pytest.fixture
def workflow() -> dict[str, Any]:
    return load_yaml(WORKFLOW)


def zizmor(*paths: Path) -> tuple[int, str]:
    result = run(tool("zizmor"), "--offline", "--persona=pedantic", "--no-progress", *paths)
    return result.returncode, output_of(result)


# --------------------------------------------------------------------------- zizmor


def test_workflows_are_zizmor_clean() -> None:
    code, output = zizmor(WORKFLOWS)
    assert code == 0, f"zizmor found problems:\n{output}"
    assert "No findings to report" in output, output


@pytest.mark.parametrize(
    ("old", "new", "audit"),
    [
        (
            "run: python deploy/scripts/detect_env.py",
            'run: python deploy/scripts/detect_env.py --head-ref "${{ github.head_ref }}"',
            "template-injection",
        ),
        ("persist-credentials: false", "fetch-depth: 1", "artipacked"),
        (
            "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd  # v6.0.2",
            "actions/checkout@v6",
            "unpinned-uses",
        ),
    ],
)
def test_zizmor_fails_on_a_broken_workflow(tmp_path: Path, old: str, new: str, audit: str) -> None:
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / "ci-cd.yml"
    broken.write_text(text.replace(old, new, 1))
    code, output = zizmor(broken)
    assert code != 0, f"zizmor accepted a workflow with {audit}:\n{output}"
    assert audit in output, output


# --------------------------------------------------------------------------- pinned actions


def uses_lines() -> list[tuple[str, str]]:
    matches = (USES_RE.match(line) for line in WORKFLOW.read_text().splitlines())
    found = [(match["ref"], match["comment"]) for match in matches if match]
    assert found, "no `uses:` in the workflow"
    return found


def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment() -> None:
    tags: dict[str, str] = {}
    for ref, comment in uses_lines():
        assert PINNED_RE.fullmatch(ref), f"{ref} is not pinned by a full commit SHA"
        tag = TAG_COMMENT_RE.fullmatch(comment)
        assert tag, f"{ref} has no `# vX.Y.Z` comment naming its tag: {comment!r}"
        assert tags.setdefault(ref, tag[1]) == tag[1], f"{ref} is commented as {tags[ref]} and {tag[1]}"
    actions = {ref.split("@")[0] for ref in tags}
    by_action = {name: {ref for ref in tags if ref.startswith(f"{name}@")} for name in actions}
    assert all(len(refs) == 1 for refs in by_action.values()), f"one commit per action: {by_action}"


def test_the_pin_check_catches_a_tag_and_a_short_sha() -> None:
    for ref in ("actions/checkout@v6.0.2", "actions/checkout@de0fac2"):
        assert not PINNED_RE.fullmatch(ref)


# --------------------------------------------------------------------------- triggers


def test_triggers_are_main_release_tags_pull_requests_and_dispatch(workflow: dict[str, Any]) -> None:
    detect_env = (SCRIPTS / "detect_env.py").read_text()
    trigger = rules.triggers(workflow)
    assert set(trigger) == {"push", "pull_request", "workflow_dispatch"}
    assert trigger["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert 'DEV_BRANCH = "main"' in detect_env, "the branch that deploys to dev is the one pushed"
    environment = trigger["workflow_dispatch"]["inputs"]["environment"]
    assert environment["type"] == "choice"
    assert environment["default"] == "auto"
    assert set(environment["options"]) == {"auto", "none", "dev", "preprod", "prod"}
    detect = workflow["jobs"]["determine-environment-and-tag"]["steps"][-1]
    assert detect["env"] == {"REQUESTED_ENVIRONMENT": "${{ inputs.environment }}"}
    assert workflow["permissions"] == {}, "least privilege: no default permissions"


def test_pull_requests_never_push_or_deploy(workflow: dict[str, Any]) -> None:
    assert rules.pull_request_problems(workflow) == []


def test_pull_request_check_catches_a_push_on_pull_requests(workflow: dict[str, Any]) -> None:
    broken = copy.deepcopy(workflow)
    broken["jobs"]["publish"]["if"] = "needs.determine-environment-and-tag.outputs.push == 'true'"
    broken["jobs"]["build"]["permissions"]["packages"] = "write"
    problems = rules.pull_request_problems(broken)
    assert any("publish may run for a pull request" in problem for problem in problems), problems
    assert any("job build may write ['packages']" in problem for problem in problems), problems


def test_every_job_declares_permissions_and_checks_out_without_credentials(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} must declare its permissions"
    for name, step in rules.steps(workflow):
        if rules.action(step) == "actions/checkout":
            assert step["with"]["persist-credentials"] is False, f"job {name} keeps the token in .git"


# --------------------------------------------------------------------------- build once


def test_the_image_is_built_once_and_that_digest_is_tested_pushed_and_deployed(
    workflow: dict[str, Any],
) -> None:
    assert rules.build_once_problems(workflow) == []
    jobs = workflow["jobs"]
    build = next(step for _, step in rules.steps(workflow) if rules.action(step) == rules.BUILD_ACTION)
    archive = build["with"]["outputs"].removeprefix("type=oci,dest=")
    upload = next(step for step in jobs["build"]["steps"] if rules.action(step) == "actions/upload-artifact")
    assert upload["with"]["path"] == archive, "the archive uploaded is the one the build wrote"
    deploy_env = next(step for step in jobs["deploy"]["steps"] if "helm-deploy.sh" in step.get("run", ""))[
        "env"
    ]
    assert deploy_env["IMAGE_DIGEST"] == rules.DIGEST
    assert jobs["publish"]["env"]["IMAGE_DIGEST"] == rules.DIGEST
    assert jobs["e2e-kind"]["env"]["IMAGE_DIGEST"] == rules.DIGEST


def _build_step(jobs: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = next(
        step for step in jobs["build"]["steps"] if rules.action(step) == rules.BUILD_ACTION
    )
    return step


def _deploy_with_other_digest(jobs: dict[str, Any]) -> None:
    for step in jobs["deploy"]["steps"]:
        if "IMAGE_DIGEST" in step.get("env", {}):
            step["env"]["IMAGE_DIGEST"] = "${{ needs.publish.outputs.digest }}"


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "second-build": lambda jobs: jobs["e2e-kind"]["steps"].append(copy.deepcopy(_build_step(jobs))),
    "docker-build-in-run": lambda jobs: jobs["e2e-kind"]["steps"].append({"run": "docker build ."}),
    "one-platform": lambda jobs: _build_step(jobs)["with"].update(platforms="linux/amd64"),
    "no-sbom": lambda jobs: _build_step(jobs)["with"].pop("sbom"),
    "no-provenance": lambda jobs: _build_step(jobs)["with"].update(provenance=False),
    "push-in-build": lambda jobs: _build_step(jobs)["with"].update(push=True),
    "kind-without-digest": lambda jobs: jobs["e2e-kind"]["env"].update(
        IMAGE_DIGEST="${{ needs.x.outputs.digest }}"
    ),
    "deploy-other-digest": _deploy_with_other_digest,
    "publish-before-kind": lambda jobs: jobs["publish"]["needs"].remove("e2e-kind"),
}


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("second-build", "2 docker/build-push-action steps"),
        ("docker-build-in-run", "builds or pushes an image in a run step"),
        ("one-platform", "not both of"),
        ("no-sbom", "no SBOM"),
        ("no-provenance", "no provenance"),
        ("push-in-build", "the build pushes"),
        ("kind-without-digest", "job e2e-kind does not use the build's digest"),
        ("deploy-other-digest", "job deploy does not use the build's digest"),
        ("publish-before-kind", "push only what kind tested"),
    ],
)
def test_build_once_check_catches(workflow: dict[str, Any], breakage: str, message: str) -> None:
    broken = copy.deepcopy(workflow)
    BREAKAGES[breakage](broken["jobs"])
    problems = rules.build_once_problems(broken)
    assert any(message in problem for problem in problems), problems or "no problem found"


# --------------------------------------------------------------------------- one helm version


def script_helm_version() -> str:
    result = run(SCRIPTS / "install-helm.sh", "--version")
    assert result.returncode == 0, output_of(result)
    return result.stdout.strip()


def test_ci_and_make_test_use_one_helm_version(workflow: dict[str, Any]) -> None:
    version = script_helm_version()
    assert re.fullmatch(r"v3\.\d+\.\d+", version), version
    assert rules.helm_version_problems(workflow, version) == []
    installed = ROOT / ".tools" / "helm"
    if installed.exists():  # `make test` installs it before the tests run
        result = run(installed, "version", "--template", "{{ .Version }}")
        assert result.stdout.strip() == version, output_of(result)


def test_helm_version_check_catches_a_drift(workflow: dict[str, Any]) -> None:
    broken = copy.deepcopy(workflow)
    broken["jobs"]["lint"]["steps"][-2]["with"]["version"] = "v3.19.0"
    problems = rules.helm_version_problems(broken, "v3.99.0")
    assert any("CI installs helm v3.17.3, deploy/scripts/install-helm.sh v3.99.0" in p for p in problems), (
        problems
    )
    assert any("job lint" in problem for problem in problems), problems


# --------------------------------------------------------------------------- AWS credentials


@pytest.mark.parametrize("role", ["", "arn:aws:iam::123456789012:role/counter-deploy"])
def test_deploy_uses_oidc_when_a_role_is_set_and_access_keys_otherwise(
    workflow: dict[str, Any], role: str
) -> None:
    assert rules.aws_problems(workflow, role) == []


def test_deploy_reads_region_and_cluster_from_secrets_and_only_it_gets_an_oidc_token(
    workflow: dict[str, Any],
) -> None:
    jobs = workflow["jobs"]
    deploy_env = next(step for step in jobs["deploy"]["steps"] if "helm-deploy.sh" in step.get("run", ""))[
        "env"
    ]
    assert deploy_env["AWS_REGION"].startswith("${{ secrets.AWS_REGION")
    assert deploy_env["EKS_CLUSTER_NAME"].startswith("${{ secrets.EKS_CLUSTER_NAME")
    with_token = [name for name, job in jobs.items() if (job.get("permissions") or {}).get("id-token")]
    assert with_token == ["deploy"]
    aws = [step for step in jobs["deploy"]["steps"] if rules.action(step) == rules.AWS_ACTION]
    assert [step["if"] for step in aws] == [rules.ROLE_SET, rules.ROLE_UNSET], "OIDC first"


@pytest.mark.parametrize(
    ("breakage", "role", "message"),
    [
        ("both-run", "", "2 credential steps run"),
        ("keys-with-role", "arn:aws:iam::1:role/x", "still passes the access keys"),
        ("no-region-secret", "", "secrets.AWS_REGION"),
    ],
)
def test_aws_check_catches(workflow: dict[str, Any], breakage: str, role: str, message: str) -> None:
    broken = copy.deepcopy(workflow)
    oidc, keys = (
        step for step in broken["jobs"]["deploy"]["steps"] if rules.action(step) == rules.AWS_ACTION
    )
    if breakage == "both-run":
        del oidc["if"]
        del keys["if"]
    elif breakage == "keys-with-role":
        oidc["with"]["aws-access-key-id"] = "${{ secrets.AWS_ACCESS_KEY_ID }}"
    elif breakage == "no-region-secret":
        keys["with"]["aws-region"] = "${{ vars.AWS_REGION }}"
    problems = rules.aws_problems(broken, role)
    assert any(message in problem for problem in problems), problems or "no problem found"
