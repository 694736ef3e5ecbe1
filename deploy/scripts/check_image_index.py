#!/usr/bin/env python3
"""Check the OCI image index the pipeline built, from its raw bytes, before anything uses it.

    skopeo inspect --raw oci-archive:IMAGE.tar | check_image_index.py --digest sha256:... \\
        --platform linux/amd64 --platform linux/arm64 --attestations

The digest of an index is the sha256 of its exact bytes, so the archive that the kind job loads
and the one the publish job pushes are proven to be the image whose digest the build reported.
Checks: that digest; one image manifest per --platform; with --attestations, for each of them
the attestation manifest BuildKit adds for the SBOM and provenance (platform unknown/unknown,
annotated with the digest of the manifest it describes). Prints the digest, or with
--manifest-for PLATFORM the digest of that platform's manifest. Exits 1 with a message naming
what is wrong. Standard library only: it runs on the bare runner.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from typing import Any

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION = "attestation-manifest"


class UnexpectedIndexError(ValueError):
    """The bytes are not the index that was expected."""


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _platform(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform") or {}
    name = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
    return f"{name}/{platform['variant']}" if platform.get("variant") else name


def parse(raw: bytes) -> list[dict[str, Any]]:
    try:
        index = json.loads(raw)
    except ValueError as error:
        raise UnexpectedIndexError(f"not JSON: {error}") from None
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise UnexpectedIndexError("not an image index: no manifests list (a single-platform image?)")
    media_type = index.get("mediaType", "application/vnd.oci.image.index.v1+json")
    if media_type not in INDEX_TYPES:
        raise UnexpectedIndexError(f"media type {media_type!r} is not an image index")
    return [item for item in index["manifests"] if isinstance(item, dict)]


def images_by_platform(manifests: list[dict[str, Any]]) -> dict[str, str]:
    images: dict[str, str] = {}
    for descriptor in manifests:
        if (descriptor.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION:
            continue
        platform = _platform(descriptor)
        if platform in images:
            raise UnexpectedIndexError(f"two manifests for {platform}")
        images[platform] = descriptor["digest"]
    return images


def attested(manifests: list[dict[str, Any]]) -> set[str]:
    """The digests of the image manifests that an attestation manifest describes."""
    return {
        (descriptor.get("annotations") or {}).get(REFERENCE_DIGEST, "")
        for descriptor in manifests
        if (descriptor.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION
    }


def check(raw: bytes, *, digest: str | None, platforms: Sequence[str], attestations: bool) -> dict[str, str]:
    """The image manifest digest of each platform, once every expectation holds."""
    actual = digest_of(raw)
    if digest is not None and actual != digest:
        raise UnexpectedIndexError(
            f"the index has digest {actual}, not {digest}: this is not the image that was built"
        )
    manifests = parse(raw)
    images = images_by_platform(manifests)
    missing = [platform for platform in platforms if platform not in images]
    if missing:
        raise UnexpectedIndexError(
            f"no image for {', '.join(missing)} (the index has {', '.join(sorted(images)) or 'none'})"
        )
    if attestations:
        described = attested(manifests)
        bare = [platform for platform in platforms if images[platform] not in described]
        if bare:
            raise UnexpectedIndexError(f"no SBOM/provenance attestation manifest for {', '.join(bare)}")
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("index", nargs="?", help="a file with the raw index (default: standard input)")
    parser.add_argument("--digest", help="the digest the index must have (sha256:...)")
    parser.add_argument("--platform", action="append", default=[], help="os/arch that must be in it")
    parser.add_argument("--attestations", action="store_true", help="each --platform must be attested")
    parser.add_argument("--manifest-for", metavar="PLATFORM", help="print that platform's manifest digest")
    args = parser.parse_args(argv)
    if args.index:
        with open(args.index, "rb") as source:  # noqa: PTH123 - a path given on the command line
            raw = source.read()
    else:
        raw = sys.stdin.buffer.read()
    platforms = [*args.platform, *([args.manifest_for] if args.manifest_for else [])]
    try:
        images = check(raw, digest=args.digest, platforms=platforms, attestations=args.attestations)
    except UnexpectedIndexError as error:
        sys.stderr.write(f"check_image_index: error: {error}\n")
        return 1
    sys.stdout.write((images[args.manifest_for] if args.manifest_for else digest_of(raw)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
