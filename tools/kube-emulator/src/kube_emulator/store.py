"""The emulated etcd: ConfigMaps and Namespaces under one lock and one resourceVersion counter."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from kube_emulator import configmap, statuses
from kube_emulator.configmap import RESOURCE
from kube_emulator.stats import Stats
from kube_emulator.statuses import Json

_META_ORDER: Final = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)
_TOP_ORDER: Final = ("kind", "apiVersion", "metadata", "immutable", "data", "binaryData", "spec", "status")
# The alphabet of apiserver's names.SimpleNameGenerator (no vowels, no look-alike digits).
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_DEFAULT_NAMESPACES: Final = ("default", "kube-node-lease", "kube-public", "kube-system")


def encode(obj: Json) -> bytes:
    """JSON the way Go's encoder writes a response: compact, with a trailing newline."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _canonical(obj: Json) -> Json:
    meta = obj["metadata"]
    ordered_meta = {key: meta[key] for key in _META_ORDER if key in meta}
    return {key: (ordered_meta if key == "metadata" else obj[key]) for key in _TOP_ORDER if key in obj}


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored object and its encoded body, computed once per write so reads cost nothing."""

    obj: Json
    body: bytes
    # the object as a list item: lists of built-in types carry no kind/apiVersion per item
    item: bytes

    @classmethod
    def of(cls, obj: Json) -> Stored:
        canonical = _canonical(obj)
        item = {key: value for key, value in canonical.items() if key not in ("kind", "apiVersion")}
        return cls(canonical, encode(canonical), encode(item)[:-1])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace", ""))

    @property
    def resource_version(self) -> str:
        return str(self.obj["metadata"].get("resourceVersion", ""))

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])

    def copy(self) -> Json:
        """A private deep copy (decoding the cached body is cheaper than `copy.deepcopy`)."""
        result: Json = json.loads(self.body)
        return result


@dataclass(frozen=True, slots=True)
class WatchEvent:
    resource_version: int
    type: str  # ADDED, MODIFIED or DELETED
    stored: Stored


class Store:
    """Thread-safe object storage with the optimistic concurrency rules of the real registry."""

    def __init__(self, stats: Stats, write_delay: float = 0.0, history: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stats = stats
        self._objects: dict[tuple[str, str], Stored] = {}
        self._namespaces: dict[str, Stored] = {}
        self._revision = 100  # like any real cluster, never "0", which means "any version" to a watch
        self._events: deque[WatchEvent] = deque(maxlen=history)
        self._history_floor = 0  # watches must start at or after this revision
        self._closed = False
        self._names = random.Random()  # noqa: S311 - generateName suffixes, not secrets
        self.write_delay = write_delay

    # -- ConfigMaps -------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Stored:
        stored = self._objects.get((namespace, name))
        if stored is None:
            raise statuses.not_found(RESOURCE, name)
        return stored

    def snapshot(self, namespace: str | None) -> tuple[list[Stored], int]:
        """Objects sorted by namespace and name, and the revision the snapshot was taken at."""
        with self._lock:
            revision = self._revision
            items = [
                stored
                for (ns, _), stored in sorted(self._objects.items())
                if namespace is None or ns == namespace
            ]
        return items, revision

    def create(self, namespace: str, obj: Json, *, dry_run: bool = False) -> Stored:
        meta = obj["metadata"]
        version = meta.pop("resourceVersion", "")
        if version.isdigit() and int(version) != 0:
            # etcd3 store: storage.ErrResourceVersionSetOnCreate, a plain error, so a reasonless 500;
            # a version that does not parse is ignored, as there
            raise statuses.unknown_server_error("resourceVersion should not be set on objects to be created")
        with self._lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(namespace, meta["generateName"])
            self._validate(obj, creating=True)
            name = meta["name"]
            if (namespace, name) in self._objects:
                raise statuses.already_exists(RESOURCE, name)
            meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            if dry_run:
                return Stored.of(obj)
            stored = self._commit(obj)
            self._objects[(namespace, name)] = stored
            self._record("ADDED", stored)
            return stored

    def update(
        self,
        namespace: str,
        name: str,
        make_new: Callable[[Stored], Json],
        *,
        dry_run: bool = False,
    ) -> Stored:
        """Replace an object with `make_new(current)`, all under the lock (a read-modify-write).

        Like `GuaranteedUpdate`: a resourceVersion in the new object must match (else 409), a uid
        must match (a precondition), and an update that changes nothing writes nothing.
        """
        with self._lock:
            current = self.get(namespace, name)
            new = make_new(current)
            new_meta = new["metadata"]
            old_meta = current.obj["metadata"]
            uid = new_meta.get("uid")  # checked first, as storage preconditions are
            if uid and uid != old_meta["uid"]:
                raise statuses.conflict(
                    RESOURCE,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old_meta['uid']}",
                )
            wanted = new_meta.get("resourceVersion")
            if wanted and wanted != old_meta["resourceVersion"]:
                raise statuses.conflict(RESOURCE, name)
            self._validate(new, creating=False)
            configmap.validate_update(current.obj, new)
            for key in ("namespace", "uid", "resourceVersion", "creationTimestamp"):
                new_meta[key] = old_meta[key]
            candidate = Stored.of(new)
            if candidate.body == current.body or dry_run:
                if not dry_run:
                    self._stats.count_noop_update()
                return candidate
            stored = self._commit(new)
            self._objects[(namespace, name)] = stored
            self._record("MODIFIED", stored)
            return stored

    def delete(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> Stored:
        with self._lock:
            current = self.get(namespace, name)
            if uid and uid != current.uid:
                why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {current.uid}"
                raise statuses.conflict(RESOURCE, name, why)
            if resource_version and resource_version != current.resource_version:
                why = (
                    f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                    f"ResourceVersion in object meta: {current.resource_version}"
                )
                raise statuses.conflict(RESOURCE, name, why)
            if dry_run:
                return current
            del self._objects[(namespace, name)]
            # the DELETED event carries the revision of the deletion, like etcd's
            stored = self._commit(current.copy())
            self._record("DELETED", stored)
            return current

    def delete_all(
        self, namespace: str, keep: Callable[[Stored], bool], *, dry_run: bool = False
    ) -> list[Stored]:
        items, _ = self.snapshot(namespace)
        deleted = []
        for stored in items:
            if keep(stored):
                continue
            try:
                deleted.append(self.delete(namespace, stored.name, dry_run=dry_run))
            except statuses.ApiError:
                continue  # deleted by someone else meanwhile: fine for a collection delete
        return deleted

    def reset(self) -> None:
        """Forget every object; revisions keep counting up so old resourceVersions stay stale."""
        with self._lock:
            self._objects.clear()
            self._namespaces.clear()
            self._events.clear()
            self._history_floor = self._revision
            self._changed.notify_all()

    def _validate(self, obj: Json, *, creating: bool) -> None:
        try:
            configmap.validate(obj, creating=creating)
        except statuses.ApiError:
            if configmap.data_size(obj) > configmap.MAX_SIZE:
                self._stats.count_too_long()
            raise

    def _commit(self, obj: Json) -> Stored:
        """Assign the next revision and pay the simulated fsync; the caller holds the lock."""
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        if self.write_delay > 0:
            time.sleep(self.write_delay)
        stored = Stored.of(obj)
        self._stats.count_write(len(stored.body), configmap.data_size(obj))
        return stored

    def _record(self, kind: str, stored: Stored) -> None:
        if len(self._events) == self._events.maxlen:
            self._history_floor = self._events[0].resource_version
        self._events.append(WatchEvent(self._revision, kind, stored))
        self._changed.notify_all()

    def _generate_name(self, namespace: str, prefix: str) -> str:
        for _ in range(8):
            name = prefix + "".join(self._names.choice(_NAME_ALPHABET) for _ in range(5))
            if (namespace, name) not in self._objects:
                return name
        raise statuses.already_exists(RESOURCE, prefix)

    # -- watch ------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    def events_after(self, revision: int, timeout: float) -> list[WatchEvent] | None:
        """Events newer than `revision`, waiting up to `timeout` for one; None if history is gone."""
        with self._changed:
            if revision < self._history_floor:
                return None
            self._changed.wait_for(
                lambda: self._closed or (bool(self._events) and self._events[-1].resource_version > revision),
                timeout,
            )
            if revision < self._history_floor:
                return None
            return [event for event in self._events if event.resource_version > revision]

    def close(self) -> None:
        """Wake every waiting watch so that the server can stop."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def open(self) -> None:
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- Namespaces -------------------------------------------------------------------------

    def namespace(self, name: str) -> Stored:
        """Every namespace exists here: the first look at one brings it into being."""
        with self._lock:
            stored = self._namespaces.get(name)
            if stored is None:
                stored = self._namespaces[name] = self._new_namespace(name)
            return stored

    def namespaces(self) -> tuple[list[Stored], int]:
        for name in _DEFAULT_NAMESPACES:
            self.namespace(name)
        with self._lock:
            return [self._namespaces[name] for name in sorted(self._namespaces)], self._revision

    def create_namespace(self, name: str) -> Stored:
        with self._lock:
            if name in self._namespaces:
                raise statuses.already_exists("namespaces", name)
            stored = self._namespaces[name] = self._new_namespace(name)
            return stored

    def delete_namespace(self, name: str) -> Stored:
        """Drop the namespace and its ConfigMaps at once (a real one terminates asynchronously)."""
        stored = self.namespace(name)
        self.delete_all(name, lambda _: False)
        with self._lock:
            self._namespaces.pop(name, None)
        terminating = stored.copy()
        terminating["metadata"]["deletionTimestamp"] = _now()
        terminating["status"] = {"phase": "Terminating"}
        return Stored.of(terminating)

    def _new_namespace(self, name: str) -> Stored:
        obj: Json = {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        return Stored.of(obj)
