"""What a Python module imports, read from its source: shared by the architecture rule (unit) and
the packaging checks (deploy)."""

from __future__ import annotations

import ast


def imported_modules(source: str) -> list[str]:
    """Every absolute module an `import` or `from ... import` statement names, in order."""
    modules: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules
