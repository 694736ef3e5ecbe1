"""The domain imports only the standard library and itself (DESIGN.md: arrows point inward)."""

from __future__ import annotations

import sys
from pathlib import Path

import domain
from tests.imports import imported_modules

DOMAIN_DIR = Path(domain.__file__).parent


def forbidden_imports(source: str) -> list[str]:
    allowed = sys.stdlib_module_names | {"domain"}
    return [module for module in imported_modules(source) if module.split(".")[0] not in allowed]


def test_domain_imports_only_the_standard_library() -> None:
    files = sorted(DOMAIN_DIR.rglob("*.py"))
    assert len(files) >= 5
    offenders = {str(f): bad for f in files if (bad := forbidden_imports(f.read_text()))}
    assert offenders == {}


def test_the_check_catches_a_forbidden_import() -> None:
    assert forbidden_imports("import redis\nfrom litestar import get\nfrom adapters.sqlite import X") == [
        "redis",
        "litestar",
        "adapters.sqlite",
    ]
    assert forbidden_imports("import json\nfrom domain.model import Counter\nfrom . import x") == []
