"""The Kubernetes API as this store uses it: one read, one conditional write, and what failures mean.

Every write is a JSON patch whose first operation tests `metadata.resourceVersion` against the
version that was read, so a write based on a stale read fails (422) instead of overwriting a
newer state; a missing ConfigMap is created, and a create that loses the race is a conflict too.

A failure is classified by what it says about the write, because that decides what may be done
next. Only an answer that proves the write was refused counts as "not applied": a conflict (409,
or 422 from a failed `test`), a 429 (flow control refuses before the handler runs), a refused
connection, 401, 403, 404 and other 4xx. Every other outcome may have been applied or may still
be: any 5xx (a 500 `etcdserver: request timed out`, a 503 or a 504 is sent while etcd may still
commit the write), a reset connection or a timeout after sending; those are settled through the
writers' sequence (settle) before anyone is told. A 422 that says the object is too long (or a
413) is permanent: retrying the same write cannot help, so it is reported at once as a full store.
The official client is synchronous, so its calls run in a small thread pool of the store's own
and never block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path
from typing import Any, Final, TypeVar

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from adapters.configmap.codec import MISSING, UNREAD, Snapshot, snapshot_from
from adapters.configmap.room import FULL_RETRY_AFTER
from adapters.configmap.stats import ConfigMapStats
from domain.errors import StoreFullError, StoreUnavailableError

FIELD_MANAGER: Final = "counter-web-server"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

_T = TypeVar("_T")


class Kind(Enum):
    CONFLICT = "conflict"  # 409, or 422 from a failed `test`: the version we read is stale
    THROTTLED = "throttled"  # 429: not applied; wait Retry-After
    NOT_FOUND = "not found"
    DENIED = "denied"  # 401, 403: fatal
    INVALID = "invalid"  # other 4xx: fatal
    TOO_LARGE = "too large"  # 422 `Too long`, 413: permanent, the ConfigMap is full
    SERVER = "server error"  # any 5xx: a write may have been applied, or may still be
    UNSENT = "unreachable"  # no connection: nothing was sent
    UNKNOWN = "no answer"  # timeout or broken connection after sending


TRANSIENT: Final = frozenset({Kind.THROTTLED, Kind.SERVER, Kind.UNSENT, Kind.UNKNOWN})
# The answers after which a write may have been applied, or may still be: everything that does
# not prove a refusal.
MAYBE_APPLIED: Final = frozenset({Kind.SERVER, Kind.UNKNOWN})


class ApiError(Exception):
    def __init__(self, kind: Kind, detail: str, *, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def _status(exc: ApiException) -> dict[str, Any]:
    """The `Status` body of an error answer ({} when it has none)."""
    with contextlib.suppress(ValueError, TypeError):
        doc = json.loads(exc.body or "")
        if isinstance(doc, dict):
            return doc
    return {}


def _status_message(exc: ApiException, doc: Mapping[str, Any]) -> str:
    message = doc.get("message")
    return message if isinstance(message, str) else str(exc.reason or "")


def _too_long(doc: Mapping[str, Any]) -> bool:
    """A 422 `Invalid` because the object passes its size limit, not because a `test` failed."""
    details = doc.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if isinstance(causes, list) and any(
        isinstance(cause, dict) and cause.get("reason") == "FieldValueTooLong" for cause in causes
    ):
        return True
    message = doc.get("message")
    return isinstance(message, str) and "Too long:" in message


def classify(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        doc = _status(exc)
        message = f"{status} {_status_message(exc, doc)}".strip()
        if status == 413 or (status == 422 and _too_long(doc)):  # noqa: PLR2004
            kind = Kind.TOO_LARGE
        elif status in {409, 422}:
            kind = Kind.CONFLICT
        elif status == 429:  # noqa: PLR2004
            return ApiError(Kind.THROTTLED, message, status=status, retry_after=_retry_after(exc))
        elif status == 404:  # noqa: PLR2004
            kind = Kind.NOT_FOUND
        elif status in {401, 403}:
            kind = Kind.DENIED
        elif status >= 500 or status == 0:  # noqa: PLR2004
            kind = Kind.SERVER
        else:
            kind = Kind.INVALID
        return ApiError(kind, message, status=status)
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        return ApiError(Kind.UNSENT, f"cannot connect: {exc}")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(
        exc.reason, urllib3.exceptions.NewConnectionError
    ):
        # urllib3's own retries (when the client has them) were all connection failures.
        return ApiError(Kind.UNSENT, f"cannot connect: {exc.reason}")
    return ApiError(Kind.UNKNOWN, f"{type(exc).__name__}: {exc}")


class ConfigMapApi:
    """The calls on one ConfigMap, each in the thread pool, each failure as an ApiError."""

    def __init__(
        self, api: Any, name: str, namespace: str, *, timeout: float, threads: int, stats: ConfigMapStats
    ) -> None:
        self._api = api
        self.name = name
        self.namespace = namespace
        self.timeout = timeout
        self._stats = stats
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"configmap-{name}")
        self.closed = False

    async def shutdown(self) -> None:
        self.closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def read(self) -> Snapshot:
        self._stats.api_reads += 1
        return await self._call(self._read_snapshot)

    async def ping(self) -> None:
        """A read whose answer is not needed; a missing ConfigMap (NOT_FOUND) is for the caller."""
        self._stats.api_reads += 1
        await self._call(self._get_once)

    async def write(self, snapshot: Snapshot, changes: Mapping[str, str | None]) -> Snapshot:
        """Apply `changes` (key -> new value, None to remove) if the ConfigMap is still `snapshot`."""
        self._stats.api_writes += 1
        if snapshot.version is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "data": {k: v for k, v in changes.items() if v is not None},
            }
            call = functools.partial(
                self._api.create_namespaced_config_map, self.namespace, body, field_manager=FIELD_MANAGER
            )
        else:
            patch: list[dict[str, Any]] = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": snapshot.version}
            ]
            if not snapshot.has_data:
                patch.append({"op": "add", "path": "/data", "value": {}})
            for key, value in changes.items():
                path = "/data/" + key.replace("~", "~0").replace("/", "~1")
                if value is None:
                    patch.append({"op": "remove", "path": path})
                else:
                    patch.append({"op": "add", "path": path, "value": value})
            call = functools.partial(
                self._api.patch_namespaced_config_map,
                self.name,
                self.namespace,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type="application/json-patch+json",
            )

        def send() -> Snapshot:
            response = call(_preload_content=False, _request_timeout=self.timeout)
            try:
                obj = json.loads(response.data)
            finally:
                response.release_conn()
            try:
                return snapshot_from(obj)
            except ValueError:
                return UNREAD  # applied all the same; the next batch reads again

        return await self._call(send)

    async def _call(self, fn: Callable[[], _T]) -> _T:
        if self.closed:
            raise ApiError(Kind.INVALID, "the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except ApiError:
            raise
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise classify(error) from None
        except ValueError as error:  # an answer that is not JSON
            raise ApiError(Kind.SERVER, f"unreadable answer: {error}") from None
        except RuntimeError as error:  # the executor was shut down
            raise ApiError(Kind.UNSENT, str(error)) from None

    def _get_once(self) -> Any:
        response = self._api.read_namespaced_config_map(
            self.name, self.namespace, _preload_content=False, _request_timeout=self.timeout
        )
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    def _read_snapshot(self) -> Snapshot:
        try:
            obj = self._get_once()
        except ApiException as error:
            if error.status == 404:  # noqa: PLR2004
                return MISSING
            raise
        try:
            return snapshot_from(obj)
        except ValueError as error:
            raise ApiError(Kind.SERVER, str(error)) from None

    # --- failures in the words of the domain ----------------------------------------------------

    def unavailable(self, error: ApiError, verb: str, *, retry_after: float = 1.0) -> StoreUnavailableError:
        where = f"ConfigMap {self.namespace}/{self.name}"
        if error.kind is Kind.DENIED:
            if error.status == 401:  # noqa: PLR2004
                message = f"the Kubernetes API refused the credentials ({error.detail})"
            else:
                message = (
                    f"the service account may not {verb} configmaps in namespace {self.namespace}"
                    f" ({error.detail}): grant the RBAC verbs get, create and patch on configmaps"
                )
        elif error.kind is Kind.NOT_FOUND:
            message = f"cannot create {where}: namespace {self.namespace!r} not found ({error.detail})"
        elif error.kind is Kind.UNSENT:
            message = f"the Kubernetes API cannot be reached for {where} ({error.detail})"
        elif error.kind is Kind.TOO_LARGE:
            return StoreFullError(
                f"the Kubernetes API refused the write to {where} as too large ({error.detail}):"
                " the ConfigMap is full; nothing was counted: delete counters or use another store",
                retry_after=FULL_RETRY_AFTER,
            )
        else:
            message = f"the Kubernetes API failed on {where} ({error.detail})"
        return StoreUnavailableError(message, retry_after=max(1, round(retry_after)))


# --- the client -------------------------------------------------------------------------------


def resolve_namespace(namespace: str | None, kubeconfig: str | None = None) -> str:
    """Explicit, else the pod's own (service-account file), else the kubeconfig context's, else default."""
    if namespace:
        return namespace
    with contextlib.suppress(OSError):
        own = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
        if own:
            return own
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        with contextlib.suppress(Exception):
            _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            context_namespace = (active or {}).get("context", {}).get("namespace")
            if isinstance(context_namespace, str) and context_namespace:
                return context_namespace
    return "default"


def new_api_client(kubeconfig: str | None = None, *, context: str | None = None, pool_size: int = 8) -> Any:
    """An ApiClient of its own (the global client configuration is left alone): in-cluster inside a
    pod, else the kubeconfig (explicit path, else KUBECONFIG, else ~/.kube/config)."""
    configuration = k8s_client.Configuration()
    # This adapter retries by itself and recognises its own writes; urllib3 retrying a PATCH on its
    # own would only hide what happened.
    configuration.retries = False
    configuration.connection_pool_maxsize = pool_size
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            return k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                persist_config=False,
                client_configuration=configuration,
            )
    except (k8s_config.ConfigException, OSError, ValueError, TypeError) as error:
        source = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise StoreUnavailableError(f"cannot load the Kubernetes configuration ({source}): {error}") from None
    return k8s_client.ApiClient(configuration)
