#!/usr/bin/env python3
"""Decide the deployment environment and the image tag from a git ref and a commit.

The rules of the pipeline, in one place:

    refs/tags/vX.Y.Z         -> prod     image tag X.Y.Z
    refs/tags/vX.Y.Z-rc.N    -> preprod  image tag X.Y.Z-rc.N
    refs/heads/main          -> dev      image tag main-<short sha>
    refs/heads/<any other>   -> none     image tag <branch slug>-<short sha>  (built and tested, not pushed)

Any other ref (another tag, a pull-request ref, a malformed version tag such as v1.2 or v1.2.3-beta)
fails with a message that says which rule it broke, so that nothing is built under a wrong name.

The event that started the run may narrow that (--event, default $GITHUB_EVENT_NAME):

    push                     the table above
    pull_request             never pushed nor deployed: image tag pr-<head branch slug>-<short sha>
    workflow_dispatch        --environment (default $REQUESTED_ENVIRONMENT): auto is the table above,
                             none builds and tests only, dev takes any branch or release tag,
                             preprod a release or a release-candidate tag, prod a release tag only

Input: --ref/--sha/--repository/--event/--head-ref/--environment, or else GITHUB_REF, GITHUB_SHA,
GITHUB_REPOSITORY, GITHUB_EVENT_NAME, GITHUB_HEAD_REF and REQUESTED_ENVIRONMENT.
Output: `key=value` lines (environment, deploy, push, image_tag, image, chart_version), appended to
$GITHUB_OUTPUT when that variable is set (GitHub Actions), printed on stdout otherwise.
Standard library only: the pipeline runs it before installing anything.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

REGISTRY = "ghcr.io"
LOCAL_IMAGE = "counter-web-server"
DEV_BRANCH = "main"
# A Docker tag is at most 128 characters; keep the slug short enough to stay readable in a UI.
MAX_SLUG_LENGTH = 63
SHORT_SHA_LENGTH = 7

_NUMBER = r"(?:0|[1-9][0-9]*)"  # SemVer: no leading zeros
_RELEASE_RE = re.compile(rf"v(?P<version>{_NUMBER}\.{_NUMBER}\.{_NUMBER})")
_CANDIDATE_RE = re.compile(rf"v(?P<version>{_NUMBER}\.{_NUMBER}\.{_NUMBER}-rc\.{_NUMBER})")
# Anything that starts like a version is meant to be one: refuse it loudly rather than ignore it.
_LOOKS_LIKE_VERSION_RE = re.compile(r"[vV][0-9]")
_SHA_RE = re.compile(r"[0-9a-fA-F]{7,40}")
_NOT_SLUG_RE = re.compile(r"[^a-z0-9]+")
_REPOSITORY_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class DetectionError(ValueError):
    """The ref or the commit cannot be mapped to an environment and an image tag."""


@dataclass(frozen=True, slots=True)
class Deployment:
    environment: str  # dev | preprod | prod | none
    image_tag: str
    image: str
    chart_version: str
    deploy: bool
    push: bool

    def outputs(self) -> dict[str, str]:
        return {
            "environment": self.environment,
            "deploy": str(self.deploy).lower(),
            "push": str(self.push).lower(),
            "image_tag": self.image_tag,
            "image": self.image,
            "chart_version": self.chart_version,
        }


def short_sha(sha: str) -> str:
    sha = sha.strip()
    if not sha:
        raise DetectionError("no commit given: set GITHUB_SHA or pass --sha")
    if _SHA_RE.fullmatch(sha) is None:
        raise DetectionError(f"commit {sha!r} is not a git commit id (7 to 40 hexadecimal digits)")
    return sha[:SHORT_SHA_LENGTH].lower()


def branch_slug(branch: str) -> str:
    """`feature/Fix_42` -> `feature-fix-42`: lower case, runs of other characters become one dash."""
    slug = _NOT_SLUG_RE.sub("-", branch.lower()).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    if not slug:
        raise DetectionError(f"branch {branch!r} has no letter or digit to build an image tag from")
    return slug


def image_name(repository: str | None) -> str:
    if not repository:
        return LOCAL_IMAGE
    if _REPOSITORY_RE.fullmatch(repository) is None:
        raise DetectionError(f"repository {repository!r} is not of the form owner/name")
    # Container registries accept lower-case repository names only.
    return f"{REGISTRY}/{repository.lower()}"


def _from_tag(tag: str, image: str) -> Deployment:
    if match := _RELEASE_RE.fullmatch(tag):
        version = match["version"]
        return Deployment("prod", version, image, version, deploy=True, push=True)
    if match := _CANDIDATE_RE.fullmatch(tag):
        version = match["version"]
        return Deployment("preprod", version, image, version, deploy=True, push=True)
    if _LOOKS_LIKE_VERSION_RE.match(tag):
        raise DetectionError(
            f"malformed version tag {tag!r}: a release tag is vX.Y.Z (prod) or vX.Y.Z-rc.N (preprod),"
            " with X, Y, Z and N numbers without leading zeros"
        )
    raise DetectionError(
        f"tag {tag!r} is not a release tag: only vX.Y.Z (prod) and vX.Y.Z-rc.N (preprod) are built from tags"
    )


def _from_branch(branch: str, sha: str, image: str) -> Deployment:
    if branch == DEV_BRANCH:
        tag = f"{DEV_BRANCH}-{sha}"
        return Deployment("dev", tag, image, f"0.0.0-{tag}", deploy=True, push=True)
    tag = f"{branch_slug(branch)}-{sha}"
    return Deployment("none", tag, image, f"0.0.0-{tag}", deploy=False, push=False)


def detect(ref: str, sha: str, repository: str | None = None) -> Deployment:
    """Map a full git ref (refs/heads/... or refs/tags/...) and a commit id to a deployment."""
    ref = ref.strip()
    if not ref:
        raise DetectionError("no git ref given: set GITHUB_REF or pass --ref")
    image = image_name(repository)
    if ref.startswith("refs/tags/") and len(ref) > len("refs/tags/"):
        short_sha(sha)  # a tag still needs a valid commit: the image label records it
        return _from_tag(ref.removeprefix("refs/tags/"), image)
    if ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        return _from_branch(ref.removeprefix("refs/heads/"), short_sha(sha), image)
    raise DetectionError(
        f"ref {ref!r} is neither a branch (refs/heads/<name>) nor a tag (refs/tags/<name>):"
        " nothing to build or deploy"
    )


# The environments a dispatched run may be sent to, and the refs each accepts (by what the ref
# would deploy to when pushed): a feature branch may go to dev, never to prod.
ACCEPTS: dict[str, frozenset[str]] = {
    "dev": frozenset({"none", "dev", "preprod", "prod"}),
    "preprod": frozenset({"preprod", "prod"}),
    "prod": frozenset({"prod"}),
}
_REFS_FOR = {
    "dev": "any branch or release tag",
    "preprod": "a vX.Y.Z or vX.Y.Z-rc.N tag",
    "prod": "a vX.Y.Z tag",
}


def _built_only(deployment: Deployment) -> Deployment:
    return replace(deployment, environment="none", deploy=False, push=False)


def detect_event(
    event: str,
    ref: str,
    sha: str,
    repository: str | None = None,
    *,
    head_ref: str = "",
    requested: str = "auto",
) -> Deployment:
    """`detect` for the event that started the run (push, pull_request or workflow_dispatch)."""
    event = event.strip() or "push"
    if event == "push":
        return detect(ref, sha, repository)
    if event == "pull_request":
        if not head_ref.strip():
            raise DetectionError(
                "a pull_request run needs its head branch: set GITHUB_HEAD_REF or pass --head-ref"
            )
        tag = f"pr-{branch_slug(head_ref)}"[:MAX_SLUG_LENGTH].rstrip("-") + f"-{short_sha(sha)}"
        return Deployment("none", tag, image_name(repository), f"0.0.0-{tag}", deploy=False, push=False)
    if event != "workflow_dispatch":
        raise DetectionError(
            f"event {event!r} is not one the pipeline runs on: push, pull_request, workflow_dispatch"
        )
    deployment = detect(ref, sha, repository)
    requested = requested.strip() or "auto"
    if requested == "auto":
        return deployment
    if requested == "none":
        return _built_only(deployment)
    if requested not in ACCEPTS:
        raise DetectionError(f"environment {requested!r} is not one of auto, none, dev, preprod, prod")
    if deployment.environment not in ACCEPTS[requested]:
        raise DetectionError(f"{requested} deploys {_REFS_FOR[requested]} only, and {ref!r} is not one")
    return replace(deployment, environment=requested, deploy=True, push=True)


def write_outputs(outputs: dict[str, str], github_output: str | None) -> None:
    lines = "".join(f"{key}={value}\n" for key, value in outputs.items())
    if github_output:
        with Path(github_output).open("a", encoding="utf-8") as sink:
            sink.write(lines)
    else:
        sys.stdout.write(lines)


def write_summary(outputs: dict[str, str], step_summary: str | None) -> None:
    if not step_summary:
        return
    rows = "".join(f"| `{key}` | `{value}` |\n" for key, value in outputs.items())
    with Path(step_summary).open("a", encoding="utf-8") as sink:
        sink.write(f"### Environment and image tag\n\n| output | value |\n| --- | --- |\n{rows}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ref", default=os.environ.get("GITHUB_REF", ""), help="default: $GITHUB_REF")
    parser.add_argument("--sha", default=os.environ.get("GITHUB_SHA", ""), help="default: $GITHUB_SHA")
    parser.add_argument(
        "--repository",
        default=os.environ.get("GITHUB_REPOSITORY"),
        help="owner/name, for the image name in ghcr.io (default: $GITHUB_REPOSITORY)",
    )
    parser.add_argument(
        "--event", default=os.environ.get("GITHUB_EVENT_NAME", "push"), help="default: $GITHUB_EVENT_NAME"
    )
    parser.add_argument(
        "--head-ref",
        default=os.environ.get("GITHUB_HEAD_REF", ""),
        help="a pull request's head branch (default: $GITHUB_HEAD_REF)",
    )
    parser.add_argument(
        "--environment",
        default=os.environ.get("REQUESTED_ENVIRONMENT", "auto"),
        help="workflow_dispatch only: auto, none, dev, preprod or prod (default: $REQUESTED_ENVIRONMENT)",
    )
    args = parser.parse_args(argv)
    try:
        deployment = detect_event(
            args.event,
            args.ref,
            args.sha,
            args.repository,
            head_ref=args.head_ref,
            requested=args.environment,
        )
    except DetectionError as error:
        sys.stderr.write(f"detect_env: error: {error}\n")
        return 1
    outputs = deployment.outputs()
    write_outputs(outputs, os.environ.get("GITHUB_OUTPUT"))
    write_summary(outputs, os.environ.get("GITHUB_STEP_SUMMARY"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
