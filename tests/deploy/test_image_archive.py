"""The checks every job runs on the one image archive the build wrote: its digest, its platforms and
their attestations (deploy/scripts/check_image_index.py, and image-archive.sh through skopeo).
Each check has a twin with an archive that is not the one built, and must fail."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import SCRIPTS, output_of, run
from tests.deploy.oci_layout import image_index, write_archive

pytestmark = pytest.mark.integration

CHECKER = SCRIPTS / "check_image_index.py"
ARCHIVE_SCRIPT = SCRIPTS / "image-archive.sh"
BOTH = ("--platform", "linux/amd64", "--platform", "linux/arm64", "--attestations")


def check(index: Path, *args: str) -> tuple[int, str, str]:
    result = run("python3", CHECKER, index, *args)
    return result.returncode, result.stdout.strip(), result.stderr


def test_the_built_index_passes_and_its_digest_is_printed(tmp_path: Path) -> None:
    _, raw = image_index()
    index = tmp_path / "index.json"
    index.write_bytes(raw)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    code, out, err = check(index, "--digest", digest, *BOTH)
    assert (code, out) == (0, digest), err
    code, out, err = check(index, "--manifest-for", "linux/amd64")
    amd64 = next(item for item in json.loads(raw)["manifests"] if item["platform"]["architecture"] == "amd64")
    assert (code, out) == (0, amd64["digest"]), err


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other-digest", "this is not the image that was built"),
        ("amd64-only", "no image for linux/arm64"),
        ("unattested", "no SBOM/provenance attestation manifest for linux/amd64, linux/arm64"),
        ("single-image", "not an image index"),
        ("reformatted", "this is not the image that was built"),
    ],
)
def test_an_index_that_is_not_the_built_one_fails(tmp_path: Path, case: str, message: str) -> None:
    _, built = image_index()
    digest = "sha256:" + hashlib.sha256(built).hexdigest()
    raw = {
        "other-digest": image_index(("linux/amd64", "linux/arm64", "linux/s390x"))[1],
        "amd64-only": image_index(("linux/amd64",))[1],
        "unattested": image_index(attested=False)[1],
        "single-image": json.dumps(json.loads(built)["manifests"][0]).encode(),
        # The same JSON with other whitespace is other bytes: another digest, another image.
        "reformatted": json.dumps(json.loads(built)).encode(),
    }[case]
    index = tmp_path / "index.json"
    index.write_bytes(raw)
    expect_digest = () if case in {"amd64-only", "unattested", "single-image"} else ("--digest", digest)
    code, _, err = check(index, *expect_digest, *BOTH)
    assert code == 1, f"{case} passed"
    assert message in err, err


@pytest.fixture
def skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        pytest.skip("no skopeo (apt-get install skopeo): CI's jobs install it when missing")
    return found


def test_image_archive_verify_reads_the_archive_through_skopeo(tmp_path: Path, skopeo: str) -> None:
    layout, raw = image_index()
    archive = tmp_path / "counter-web-server.oci.tar"
    digest = write_archive(archive, layout, raw)
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    result = run(ARCHIVE_SCRIPT, "verify", archive, digest)
    assert result.returncode == 0, output_of(result)
    assert f"is {digest}: linux/amd64 linux/arm64, each with its SBOM and provenance" in result.stderr


def test_image_archive_verify_refuses_another_archive(tmp_path: Path, skopeo: str) -> None:
    built = tmp_path / "built.oci.tar"
    digest = write_archive(built, *image_index())
    other = tmp_path / "other.oci.tar"
    write_archive(other, *image_index(attested=False))
    result = run(ARCHIVE_SCRIPT, "verify", other, digest)
    assert result.returncode != 0, output_of(result)
    assert "this is not the image that was built" in result.stderr, output_of(result)
    result = run(ARCHIVE_SCRIPT, "verify", built, "sha256:" + "0" * 63)
    assert result.returncode != 0
    assert "is not a sha256 digest" in result.stderr, output_of(result)


def test_image_archive_promote_refuses_an_untagged_target(tmp_path: Path, skopeo: str) -> None:
    archive = tmp_path / "built.oci.tar"
    digest = write_archive(archive, *image_index())
    result = run(ARCHIVE_SCRIPT, "promote", archive, digest, "ghcr.io/acme/counter")
    assert result.returncode != 0
    assert "must be registry/repository:tag" in result.stderr, output_of(result)
