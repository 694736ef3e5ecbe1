#!/usr/bin/env python3
"""Decide the deployment environment and the image tag from a git ref and a commit.

The rules of the pipeline, in one place:

    refs/tags/vX.Y.Z         -> prod     image tag X.Y.Z
    refs/tags/vX.Y.Z-rc.N    -> preprod  image tag X.Y.Z-rc.N
    refs/heads/main          -> dev      image tag main-<short sha>
    refs/heads/<any other>   -> none     image tag <branch slug>-<short sha>  (built and tested, not pushed)

Any other ref (another tag, a pull-request ref, a malformed version tag such as v1.2 or v1.2.3-beta)
fails with a message that says which rule it broke, so that nothing is built under a wrong name.

Input: --ref/--sha/--repository, or else GITHUB_REF, GITHUB_SHA and GITHUB_REPOSITORY.
Output: `key=value` lines (environment, deploy, push, image_tag, image, chart_version), appended to
$GITHUB_OUTPUT when that variable is set (GitHub Actions), printed on stdout otherwise.
Standard library only: the pipeline runs it before installing anything.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
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
    args = parser.parse_args(argv)
    try:
        deployment = detect(args.ref, args.sha, args.repository)
    except DetectionError as error:
        sys.stderr.write(f"detect_env: error: {error}\n")
        return 1
    outputs = deployment.outputs()
    write_outputs(outputs, os.environ.get("GITHUB_OUTPUT"))
    write_summary(outputs, os.environ.get("GITHUB_STEP_SUMMARY"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
