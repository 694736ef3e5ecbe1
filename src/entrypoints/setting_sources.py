"""Where a setting's text comes from besides its variable, and which variables look like
settings but are none.

- A file: `COUNTER_<NAME>_FILE` names a file that holds the value (a Kubernetes or Docker
  secret mounted as a file), read once at start-up.
- An unknown `COUNTER_*` variable is a typo or a leftover: it would be ignored without a word,
  so `counter serve` names each one, with the closest setting it may have meant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "COUNTER_"
_MOST_FILE_BYTES = 64 * 1024  # a secret, not a data file: a larger one is the wrong path
# Kubernetes gives every pod variables for each Service in its namespace (`enableServiceLinks`):
# a Service named `counter` or `counter-*` gives COUNTER_SERVICE_HOST, COUNTER_PORT_80_TCP...
_SERVICE_LINK = re.compile(
    r"COUNTER(?:_\w+?)?_(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?|PORT_\d+_(?:TCP|UDP|SCTP)(?:_PROTO|_PORT|_ADDR)?)"
)
_SERVICE_LINK_PORT = re.compile(r"COUNTER(?:_\w+)?_PORT")  # holding tcp://address:port
_SERVICE_LINK_URL = re.compile(r"(?:tcp|udp|sctp)://")


def read_file(path: str) -> str:
    """The text of the file at `path`, without the one trailing newline editors and `echo` add;
    ValueError saying why it cannot be had."""
    if not path:
        raise ValueError("is empty: give the path of the file that holds the value")
    try:
        with Path(path).open("rb") as file:
            data = file.read(_MOST_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {path!r}: {error.strerror or error}") from None
    if len(data) > _MOST_FILE_BYTES:
        raise ValueError(f"{path!r} is larger than {_MOST_FILE_BYTES // 1024} KiB: not a setting's file")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


@dataclass(frozen=True, slots=True)
class UnknownVariable:
    variable: str
    suggestion: str | None  # the known variable it is closest to, if any is close

    @property
    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.variable} is not a setting of this service and is ignored{hint}"


def unknown_variables(environ: Mapping[str, str], known: Iterable[str]) -> list[UnknownVariable]:
    """Every `COUNTER_*` variable of `environ` that is not in `known`, by name, each with its
    closest known variable. Kubernetes' own service variables are left out."""
    known = set(known)
    # Compared without the prefix that every name shares, which would make any two look alike.
    by_suffix = {name.removeprefix(PREFIX): name for name in known}
    unknown = []
    for variable in sorted(environ):
        if not variable.startswith(PREFIX) or variable in known:
            continue
        if _from_kubernetes(variable, environ[variable]):
            continue
        close = difflib.get_close_matches(variable.removeprefix(PREFIX), by_suffix, n=1, cutoff=0.6)
        unknown.append(UnknownVariable(variable, by_suffix[close[0]] if close else None))
    return unknown


def _from_kubernetes(variable: str, value: str) -> bool:
    return bool(
        _SERVICE_LINK.fullmatch(variable)
        or (_SERVICE_LINK_PORT.fullmatch(variable) and _SERVICE_LINK_URL.match(value))
    )
