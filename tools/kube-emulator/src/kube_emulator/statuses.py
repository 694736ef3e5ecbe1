"""`Status` bodies shaped like the ones kube-apiserver builds (k8s.io/apimachinery errors package).

Key order follows the Go struct (`kind, apiVersion, metadata, status, message, reason, details, code`)
and empty Go fields are left out (`omitempty`), so a client that reads the raw body sees the same
document a real server sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

OPTIMISTIC_LOCK_MESSAGE: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)

Json = dict[str, Any]

_OMIT: Final = object()


class ApiError(Exception):
    """Raised anywhere in request handling; answered as the `Status` it carries."""

    def __init__(self, status: Json, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.code: int = status["code"]
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))


_TYPE_LABELS: Final = {  # CauseType -> the words Go prints for it
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}


@dataclass(frozen=True)
class FieldError:
    """One `field.Error`; `body()` renders it the way `(*field.Error).ErrorBody` does."""

    type: str  # the CauseType, e.g. "FieldValueInvalid"
    field: str
    detail: str = ""
    bad_value: Any = _OMIT

    def body(self) -> str:
        label = _TYPE_LABELS.get(self.type, self.type)
        # Go prints the bad value only for the types that carry one
        no_value = self.type in {
            "FieldValueRequired",
            "FieldValueForbidden",
            "FieldValueTooLong",
            "InternalError",
        }
        text = label if no_value or self.bad_value is _OMIT else f"{label}: {_go_value(self.bad_value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # close to Go's %q for ordinary text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def failure(
    code: int,
    reason: str,
    message: str,
    details: Json | None = None,
) -> Json:
    body: Json = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _named(name: str, resource: str) -> Json:
    return {"name": name, "kind": resource} if name else {"kind": resource}


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(failure(404, "NotFound", f'{resource} "{name}" not found', _named(name, resource)))


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(
        failure(409, "AlreadyExists", f'{resource} "{name}" already exists', _named(name, resource))
    )


def conflict(resource: str, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> ApiError:
    message = f'Operation cannot be fulfilled on {resource} "{name}": {why}'
    return ApiError(failure(409, "Conflict", message, _named(name, resource)))


def invalid(kind: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    messages = list(dict.fromkeys(str(e) for e in errors))  # an Aggregate drops duplicates
    aggregate = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    details: Json = _named(name, kind)
    details["causes"] = causes
    return ApiError(failure(422, "Invalid", f'{kind} "{name}" is invalid: {aggregate}', details))


def patch_failed(library_message: str) -> ApiError:
    """422 for a patch the json-patch library could not apply (`NewGenericServerResponse(422, ...)`)."""
    details = {"causes": [{"reason": "UnexpectedServerResponse", "message": library_message}]}
    return ApiError(
        failure(422, "Invalid", "the server rejected our request due to an error in our request", details)
    )


def bad_request(message: str) -> ApiError:
    return ApiError(failure(400, "BadRequest", message))


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        failure(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"retryAfterSeconds": retry_after},
        ),
        headers={"Retry-After": str(retry_after)},
    )


def internal_error(why: str) -> ApiError:
    details = {"causes": [{"message": why}]}
    return ApiError(failure(500, "InternalError", f"Internal error occurred: {why}", details))


def unknown_server_error(message: str) -> ApiError:
    """A plain Go error that reached the handler: code 500 and no reason (`StatusReasonUnknown`)."""
    return ApiError(failure(500, "", message))


def timeout(why: str) -> ApiError:
    return ApiError(failure(504, "Timeout", f"Timeout: {why}", {}))


def service_unavailable(message: str) -> ApiError:
    """503 `ServiceUnavailable` (`NewServiceUnavailable(reason)`: the reason is the message)."""
    return ApiError(failure(503, "ServiceUnavailable", message))


ETCD_TIMEOUT: Final = "etcdserver: request timed out"
REQUEST_TIMEOUT: Final = "request did not complete within requested timeout - context deadline exceeded"


def unconfirmed_write(code: int) -> ApiError:
    """The answer to a write that etcd did not confirm in time, and may commit afterwards.

    500: etcd's own error reaches the handler as a plain Go error, so a reasonless Status with its
    text (`Error from server: etcdserver: request timed out` in kubectl); 503: the same text as
    `ServiceUnavailable`; 504: the apiserver's timeout filter, which answers while the storage
    call goes on.
    """
    if code == 503:  # noqa: PLR2004 - HTTP 503
        return service_unavailable(ETCD_TIMEOUT)
    if code == 504:  # noqa: PLR2004 - HTTP 504
        return timeout(REQUEST_TIMEOUT)
    return unknown_server_error(ETCD_TIMEOUT)


def generic_not_found() -> ApiError:
    return ApiError(failure(404, "NotFound", "the server could not find the requested resource", {}))


def method_not_allowed() -> ApiError:
    return ApiError(
        failure(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
        )
    )


def unsupported_media_type(accepted: Sequence[str]) -> ApiError:
    message = "the body of the request was in an unknown format - accepted media types include: " + ", ".join(
        accepted
    )
    return ApiError(failure(415, "UnsupportedMediaType", message))


def request_entity_too_large(limit: int) -> ApiError:
    return ApiError(failure(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}", {}))


def unauthorized() -> ApiError:
    return ApiError(failure(401, "Unauthorized", "Unauthorized"))


def expired(message: str) -> ApiError:
    return ApiError(failure(410, "Expired", message))


def deleted(resource: str, name: str, uid: str) -> Json:
    """The 200 body of a DELETE on a store without `ReturnDeletedObject` (configmaps)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": resource, "uid": uid},
    }
