"""An emulated Kubernetes API server for ConfigMaps (tests and local runs).

Real HTTP on 127.0.0.1, reached through a generated kubeconfig by kubectl and the official client,
with the API's concurrency semantics (resourceVersion, 409 Conflict, 422 on a failed JSON-patch
`test`, 422 `Too long` past 1 MiB) and switchable fault injection, including the 5xx whose write
etcd commits after the answer (faults, late).

Deliberately not emulated: server-side apply (PATCH `application/apply-patch+yaml` gets 415),
managedFields, finalizers and graceful deletion (a DELETE removes at once), label and annotation
validation, admission (every namespace exists), RBAC, OpenAPI v2 (404; kubectl reads the small
OpenAPI v3 document instead), protobuf answers (requests in protobuf are decoded, answers are JSON),
consistent list snapshots across `continue` pages, and selector-leaving DELETED watch events.
"""

from kube_emulator.admin_client import EmulatorAdminClient
from kube_emulator.emulator import DEFAULT_TOKEN, KubeApiEmulator
from kube_emulator.faults import FaultKind, Faults

__all__ = ["DEFAULT_TOKEN", "EmulatorAdminClient", "FaultKind", "Faults", "KubeApiEmulator"]
