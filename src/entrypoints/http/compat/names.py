"""The name rule CountAPI and Abacus share: 3 to 64 of `A-Z a-z 0-9 _ . -` (the domain takes
these and more, so every counter they name is one of ours)."""

from __future__ import annotations

import re

NAME_MIN_LENGTH = 3
NAME_MAX_LENGTH = 64
NAME_RE = re.compile(rf"[A-Za-z0-9_.-]{{{NAME_MIN_LENGTH},{NAME_MAX_LENGTH}}}")
