"""What the pipeline must be, as functions over the parsed workflow that list what is wrong: the
tests run them on the real workflow (no problem) and on broken copies (the problem is named)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

BUILD_ACTION = "docker/build-push-action"
AWS_ACTION = "aws-actions/configure-aws-credentials"
HELM_ACTION = "azure/setup-helm"
BUILD_JOB = "build"
KIND_JOB = "e2e-kind"
PUBLISH_JOB = "publish"
DEPLOY_JOB = "deploy"
DIGEST = "${{ needs.build.outputs.digest }}"
PLATFORMS = {"linux/amd64", "linux/arm64"}
ROLE_SET = "vars.AWS_ROLE_TO_ASSUME != ''"
ROLE_UNSET = "vars.AWS_ROLE_TO_ASSUME == ''"
# Run steps that would build or push an image a second time, outside the one build step.
SECOND_BUILD_RE = re.compile(r"docker\s+(buildx\s+)?build|docker\s+push|buildah|podman\s+build|make\s+image")


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML (YAML 1.1) reads the `on:` key as the boolean True.
    found: dict[str, Any] = workflow["on"] if "on" in workflow else workflow[True]
    return found


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def action(step: dict[str, Any]) -> str:
    return str(step.get("uses", "")).split("@", 1)[0]


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def text_of(value: Any) -> str:
    """Every string inside a job or a step, for references to outputs."""
    if isinstance(value, dict):
        return "\n".join(text_of(item) for item in value.values())
    if isinstance(value, list):
        return "\n".join(text_of(item) for item in value)
    return str(value)


def build_once_problems(workflow: dict[str, Any]) -> list[str]:
    builds = [(job, step) for job, step in steps(workflow) if action(step) == BUILD_ACTION]
    if len(builds) != 1:
        return [f"{len(builds)} {BUILD_ACTION} steps: the image must be built exactly once"]
    job_name, build = builds[0]
    problems = [] if job_name == BUILD_JOB else [f"the build step is in job {job_name}, not {BUILD_JOB}"]
    problems += _build_step_problems(build)
    if (
        workflow["jobs"][job_name].get("outputs", {}).get("digest")
        != f"${{{{ steps.{build.get('id')}.outputs.digest }}}}"
    ):
        problems.append(f"job {job_name} does not output the build step's digest as `digest`")
    problems += [
        f"job {job} builds or pushes an image in a run step: {step['run']!r}"
        for job, step in steps(workflow)
        if SECOND_BUILD_RE.search(str(step.get("run", "")))
    ]
    return problems + _consumer_problems(workflow["jobs"])


def _build_step_problems(build: dict[str, Any]) -> list[str]:
    problems = []
    with_ = build.get("with", {})
    platforms = {item.strip() for item in str(with_.get("platforms", "")).split(",")}
    if not platforms >= PLATFORMS:
        problems.append(f"the build's platforms are {sorted(platforms)}, not both of {sorted(PLATFORMS)}")
    if str(with_.get("sbom", "")).lower() != "true":
        problems.append("the build has no SBOM attestation (sbom: true)")
    provenance = str(with_.get("provenance", "")).lower()
    if provenance not in {"true", "mode=max", "mode=min"}:
        problems.append(f"the build has no provenance attestation (provenance: {provenance or 'unset'})")
    if str(with_.get("push", "false")).lower() != "false" or "push=true" in str(with_.get("outputs", "")):
        problems.append("the build pushes: only the publish job pushes, after the kind tests")
    if not str(with_.get("outputs", "")).startswith("type=oci,"):
        problems.append("the build must write an OCI archive (outputs: type=oci,dest=...) for the later jobs")
    return problems


def _consumer_problems(jobs: dict[str, Any]) -> list[str]:
    problems = []
    for consumer in (KIND_JOB, PUBLISH_JOB, DEPLOY_JOB):
        job = jobs.get(consumer)
        if job is None:
            problems.append(f"no job {consumer}")
            continue
        if DIGEST not in text_of(job):
            problems.append(f"job {consumer} does not use the build's digest ({DIGEST})")
        if consumer != DEPLOY_JOB and not _downloads(job, "image"):
            problems.append(f"job {consumer} does not download the built image (artifact `image`)")
    if BUILD_JOB not in needs(jobs.get(KIND_JOB, {})):
        problems.append(f"job {KIND_JOB} does not need {BUILD_JOB}")
    if not {BUILD_JOB, KIND_JOB} <= needs(jobs.get(PUBLISH_JOB, {})):
        problems.append(f"job {PUBLISH_JOB} must need {BUILD_JOB} and {KIND_JOB}: push only what kind tested")
    if PUBLISH_JOB not in needs(jobs.get(DEPLOY_JOB, {})):
        problems.append(f"job {DEPLOY_JOB} must need {PUBLISH_JOB}")
    kind_runs = "\n".join(str(step.get("run", "")) for step in jobs.get(KIND_JOB, {}).get("steps", []))
    if "IMAGE_ARCHIVE=" not in kind_runs or "kind-deploy.sh" not in kind_runs:
        problems.append(f"job {KIND_JOB} must run kind-deploy.sh on the downloaded IMAGE_ARCHIVE")
    return problems


def _downloads(job: dict[str, Any], artifact: str) -> bool:
    return any(
        action(step) == "actions/download-artifact" and step.get("with", {}).get("name") == artifact
        for step in job.get("steps", [])
    )


def pull_request_problems(workflow: dict[str, Any]) -> list[str]:
    problems = []
    for name in (PUBLISH_JOB, DEPLOY_JOB):
        condition = str(workflow["jobs"].get(name, {}).get("if", ""))
        if "github.event_name != 'pull_request'" not in condition:
            problems.append(f"job {name} may run for a pull request: its `if` is {condition!r}")
    for name, job in workflow["jobs"].items():
        written = {scope for scope, level in (job.get("permissions") or {}).items() if level == "write"}
        allowed = {PUBLISH_JOB: {"packages"}, DEPLOY_JOB: {"id-token"}}.get(name, set())
        if written - allowed:
            problems.append(f"job {name} may write {sorted(written - allowed)}")
    return problems


def aws_problems(workflow: dict[str, Any], role: str) -> list[str]:
    """With vars.AWS_ROLE_TO_ASSUME set to `role` ('' = unset): which credentials the deploy uses."""
    deploy = workflow["jobs"].get(DEPLOY_JOB, {})
    aws = [step for step in deploy.get("steps", []) if action(step) == AWS_ACTION]
    if not aws:
        return [f"job {DEPLOY_JOB} configures no AWS credentials"]

    def runs(step: dict[str, Any]) -> bool:
        condition = str(step.get("if", "")).strip().removeprefix("${{").removesuffix("}}").strip()
        if condition == ROLE_SET:
            return role != ""
        if condition == ROLE_UNSET:
            return role == ""
        return condition == ""

    active = [step.get("with", {}) for step in aws if runs(step)]
    if len(active) != 1:
        return [f"with AWS_ROLE_TO_ASSUME={role!r}, {len(active)} credential steps run, not 1"]
    (used,) = active
    problems = _oidc_problems(used) if role else _access_key_problems(used)
    if "secrets.AWS_REGION" not in str(used.get("aws-region", "")):
        problems.append("the AWS region is not read from secrets.AWS_REGION")
    return problems


def _oidc_problems(used: dict[str, Any]) -> list[str]:
    problems = []
    if used.get("role-to-assume") != "${{ vars.AWS_ROLE_TO_ASSUME }}":
        problems.append("with a role set, the deploy does not assume vars.AWS_ROLE_TO_ASSUME")
    if "aws-access-key-id" in used or "aws-secret-access-key" in used:
        problems.append("with a role set, the deploy still passes the access keys")
    return problems


def _access_key_problems(used: dict[str, Any]) -> list[str]:
    problems = []
    if used.get("aws-access-key-id") != "${{ secrets.AWS_ACCESS_KEY_ID }}":
        problems.append("without a role, the access key is not secrets.AWS_ACCESS_KEY_ID")
    if used.get("aws-secret-access-key") != "${{ secrets.AWS_SECRET_ACCESS_KEY }}":
        problems.append("without a role, the secret key is not secrets.AWS_SECRET_ACCESS_KEY")
    if "role-to-assume" in used:
        problems.append("without a role, the deploy still assumes one")
    return problems


def helm_version_problems(workflow: dict[str, Any], installed_by_script: str) -> list[str]:
    problems = []
    declared = workflow.get("env", {}).get("HELM_VERSION")
    if declared != installed_by_script:
        problems.append(f"CI installs helm {declared}, deploy/scripts/install-helm.sh {installed_by_script}")
    for job, step in steps(workflow):
        if action(step) == HELM_ACTION and step.get("with", {}).get("version") != "${{ env.HELM_VERSION }}":
            problems.append(f"job {job}: {HELM_ACTION} does not install env.HELM_VERSION")
    return problems
