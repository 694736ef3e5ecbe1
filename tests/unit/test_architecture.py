"""The domain imports only the standard library and itself (DESIGN.md: arrows point inward)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import domain

DOMAIN_DIR = Path(domain.__file__).parent


def forbidden_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [m for m in modules if m.split(".")[0] not in sys.stdlib_module_names | {"domain"}]
    return found


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
