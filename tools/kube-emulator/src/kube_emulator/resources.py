"""The verbs on ConfigMaps and Namespaces: request in, `Response` out, errors raised as `ApiError`."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

import yaml

from kube_emulator import configmap, patches, protobuf, selectors, statuses, tables, watch
from kube_emulator.configmap import RESOURCE
from kube_emulator.messages import Request, Response
from kube_emulator.patches import PatchError
from kube_emulator.statuses import FieldError, Json
from kube_emulator.store import Store, Stored, encode

MAX_BODY: Final = 3 * 1024 * 1024  # the apiserver's MaxRequestBodyBytes
_LIST_PREFIX: Final = b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":'


def parse_body(request: Request) -> Any:
    content_type = request.content_type
    if content_type == protobuf.CONTENT_TYPE:
        return protobuf.decode(request.body)
    if content_type in ("application/yaml", "application/apply-patch+yaml"):
        try:
            return yaml.safe_load(request.body)
        except yaml.YAMLError as error:
            raise statuses.bad_request(f"error converting YAML to JSON: {error}") from error
    try:
        return json.loads(request.body)
    except ValueError as error:
        raise statuses.bad_request(f"couldn't get version/kind; json parse error: {error}") from error


def _dry_run(request: Request, options: Json | None = None) -> bool:
    values = [request.query.get("dryRun", "")]
    if options and isinstance(options.get("dryRun"), list):
        values.extend(str(value) for value in options["dryRun"])
    for value in values:
        if value not in ("", "All"):
            raise statuses.bad_request(f'Invalid dry run value "{value}": supported values: "All"')
    return "All" in values


def _warnings(texts: list[str]) -> list[tuple[str, str]]:
    return [("Warning", '299 - "' + text.replace('"', '\\"') + '"') for text in texts]


def _decoded(request: Request, raw: Any) -> tuple[Json, list[str]]:
    return configmap.decode(raw, request.query.get("fieldValidation", "Warn"))


def _check_identity(obj: Json, namespace: str, name: str | None) -> None:
    """apiserver's `checkName`: a body may not name another object than the URL does."""
    meta = obj["metadata"]
    if meta.get("namespace", namespace) != namespace:
        raise statuses.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if name is not None:
        body_name = meta.setdefault("name", name)
        if body_name != name:
            raise statuses.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )


class ConfigMaps:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, request: Request, namespace: str, name: str) -> Response:
        stored = self._store.get(namespace, name)
        if tables.wants_table(request.headers.get("accept")):
            include = request.query.get("includeObject", "Metadata")
            return Response.json(200, tables.configmap_table([stored], None, include))
        return Response(200, stored.body)

    def list(self, request: Request, namespace: str | None) -> Response:
        query = request.query
        wanted = selectors.combined(query.get("labelSelector"), query.get("fieldSelector"))
        if query.get("watch") in ("true", "1"):
            start = watch.parse_start(query.get("resourceVersion", ""))
            timeout = float(int_param(query, "timeoutSeconds", watch.DEFAULT_TIMEOUT))
            render = watch.as_object
            if tables.wants_table(request.headers.get("accept")):
                include = query.get("includeObject", "Metadata")
                render = lambda stored: encode(tables.configmap_table([stored], None, include))[:-1]  # noqa: E731
            return Response(
                200,
                stream=watch.stream(
                    self._store, namespace, wanted, start=start, timeout=timeout, render=render
                ),
            )
        items, revision = self._store.snapshot(namespace)
        items = [stored for stored in items if wanted(stored)]
        items, list_meta = _page(items, query, revision)
        if tables.wants_table(request.headers.get("accept")):
            include = query.get("includeObject", "Metadata")
            return Response.json(200, tables.configmap_table(items, revision, include, list_meta))
        meta = encode({"resourceVersion": str(revision), **list_meta})[:-1]
        body = _LIST_PREFIX + meta + b',"items":[' + b",".join(s.item for s in items) + b"]}\n"
        return Response(200, body)

    def create(self, request: Request, namespace: str) -> Response:
        obj, warnings = _decoded(request, parse_body(request))
        _check_identity(obj, namespace, None)
        stored = self._store.create(namespace, obj, dry_run=_dry_run(request))
        return Response(201, stored.body, headers=_warnings(warnings))

    def replace(self, request: Request, namespace: str, name: str) -> Response:
        obj, warnings = _decoded(request, parse_body(request))
        _check_identity(obj, namespace, name)
        stored = self._store.update(namespace, name, lambda _: obj, dry_run=_dry_run(request))
        return Response(200, stored.body, headers=_warnings(warnings))

    def patch(self, request: Request, namespace: str, name: str) -> Response:
        content_type = request.content_type
        if content_type not in patches.SUPPORTED:
            # server-side apply is not emulated: answer as a server without it would
            raise statuses.unsupported_media_type(patches.SUPPORTED)
        patch = parse_body(request)
        warnings: list[str] = []

        def patched(current: Stored) -> Json:
            try:
                result = patches.apply(content_type, current.copy(), patch)
            except PatchError as error:
                raise statuses.patch_failed(str(error)) from error
            obj, found = _decoded(request, result)
            warnings.extend(found)
            _check_identity(obj, namespace, name)
            uid = obj["metadata"].get("uid")
            if uid and uid != current.uid:
                # a patch has no uid precondition: changing the uid is an update validation error
                immutable = FieldError("FieldValueInvalid", "metadata.uid", "field is immutable", uid)
                raise statuses.invalid(configmap.KIND, name, [immutable])
            return obj

        stored = self._store.update(namespace, name, patched, dry_run=_dry_run(request))
        return Response(200, stored.body, headers=_warnings(warnings))

    def delete(self, request: Request, namespace: str, name: str) -> Response:
        options = parse_body(request) if request.body.strip() else {}
        if not isinstance(options, dict):
            raise statuses.bad_request("the body of a DELETE must be a DeleteOptions object")
        preconditions = options.get("preconditions") or {}
        stored = self._store.delete(
            namespace,
            name,
            uid=preconditions.get("uid"),
            resource_version=preconditions.get("resourceVersion"),
            dry_run=_dry_run(request, options),
        )
        return Response.json(200, statuses.deleted(RESOURCE, stored.name, stored.uid))

    def delete_collection(self, request: Request, namespace: str) -> Response:
        query = request.query
        wanted = selectors.combined(query.get("labelSelector"), query.get("fieldSelector"))
        deleted = self._store.delete_all(
            namespace, lambda stored: not wanted(stored), dry_run=_dry_run(request)
        )
        body = (
            _LIST_PREFIX
            + encode({"resourceVersion": str(self._store.revision)})[:-1]
            + b',"items":['
            + b",".join(s.item for s in deleted)
            + b"]}\n"
        )
        return Response(200, body)


def _page(items: list[Stored], query: dict[str, str], revision: int) -> tuple[list[Stored], Json]:
    """`limit` and `continue`: pages over the current state (a real server pins the first page's)."""
    token = query.get("continue")
    if token:
        try:
            namespace, name = json.loads(base64.urlsafe_b64decode(token))["after"]
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise statuses.bad_request(f"continue key is not valid: {error}") from error
        items = [s for s in items if (s.namespace, s.name) > (namespace, name)]  # the snapshot's order
    limit = int_param(query, "limit")
    if limit <= 0 or len(items) <= limit:
        return items, {}
    page, rest = items[:limit], len(items) - limit
    after = [page[-1].namespace, page[-1].name]
    next_token = base64.urlsafe_b64encode(json.dumps({"rv": revision, "after": after}).encode()).decode()
    return page, {"continue": next_token, "remainingItemCount": rest}


def int_param(query: dict[str, str], name: str, default: int = 0) -> int:
    text = query.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError as error:
        raise statuses.bad_request(f'invalid value for {name}: "{text}"') from error


class Namespaces:
    """Every namespace exists; listing shows the ones used so far and the usual four."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, name: str) -> Response:
        return Response(200, self._store.namespace(name).body)

    def list(self) -> Response:
        items, revision = self._store.namespaces()
        body = (
            b'{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"'
            + str(revision).encode()
            + b'"},"items":['
            + b",".join(s.item for s in items)
            + b"]}\n"
        )
        return Response(200, body)

    def create(self, request: Request) -> Response:
        raw = parse_body(request)
        name = raw.get("metadata", {}).get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not configmap.is_valid_name(name):
            error = FieldError("FieldValueRequired", "metadata.name", "name or generateName is required")
            raise statuses.invalid("Namespace", str(name or ""), [error])
        return Response(201, self._store.create_namespace(name).body)

    def delete(self, name: str) -> Response:
        return Response(200, self._store.delete_namespace(name).body)
