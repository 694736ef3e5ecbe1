"""A small multi-platform OCI image archive, shaped like the one BuildKit's OCI exporter writes with
SBOM and provenance attestations: an image index with one manifest per platform and, for each,
an attestation manifest (platform unknown/unknown) annotated with the digest it describes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
PREDICATES = ("https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2")


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Layout:
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def add_json(self, document: dict[str, Any], media_type: str, **extra: Any) -> dict[str, Any]:
        return self.add(json.dumps(document, separators=(",", ":")).encode(), media_type, **extra)

    def image(self, os_name: str, architecture: str) -> dict[str, Any]:
        layer = _tar_of({"etc/counter-platform": f"{os_name}/{architecture}\n".encode()})
        diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
        config = {
            "architecture": architecture,
            "os": os_name,
            "config": {"Entrypoint": ["counter"], "Cmd": ["serve"], "User": "10001:10001"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.add_json(config, OCI_CONFIG),
            "layers": [self.add(gzip.compress(layer, mtime=0), OCI_LAYER)],
        }
        return self.add_json(manifest, OCI_MANIFEST, platform={"architecture": architecture, "os": os_name})

    def attestation(self, subject: dict[str, Any]) -> dict[str, Any]:
        layers = [
            self.add_json(
                {"predicateType": predicate}, IN_TOTO, annotations={"in-toto.io/predicate-type": predicate}
            )
            for predicate in PREDICATES
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.add_json({}, OCI_CONFIG),
            "layers": layers,
        }
        return self.add_json(
            manifest,
            OCI_MANIFEST,
            platform={"architecture": "unknown", "os": "unknown"},
            annotations={
                "vnd.docker.reference.digest": subject["digest"],
                "vnd.docker.reference.type": "attestation-manifest",
            },
        )


def image_index(
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"), *, attested: bool = True
) -> tuple[Layout, bytes]:
    """The blobs and the raw bytes of an image index over `platforms`."""
    layout = Layout()
    manifests = []
    for platform in platforms:
        os_name, architecture = platform.split("/")
        image = layout.image(os_name, architecture)
        manifests.append(image)
        if attested:
            manifests.append(layout.attestation(image))
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, indent=2).encode()
    return layout, raw


def write_archive(
    path: Path, layout: Layout, index: bytes, name: str = "counter-web-server:candidate"
) -> str:
    """An OCI archive (a tar of an OCI layout) whose one image is `index`; returns its digest."""
    top = layout.add(
        index, OCI_INDEX, annotations={"org.opencontainers.image.ref.name": name.rsplit(":", maxsplit=1)[-1]}
    )
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]}).encode(),
        **{f"blobs/sha256/{digest.removeprefix('sha256:')}": data for digest, data in layout.blobs.items()},
    }
    path.write_bytes(_tar_of(files))
    digest: str = top["digest"]
    return digest
