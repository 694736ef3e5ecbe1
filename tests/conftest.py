"""Nothing shared by every test: each kind of test loads its own fixtures (tests/unit/conftest.py,
tests/integration/conftest.py), so that a unit run never imports a server fixture."""

import pytest

# The contract suite is imported by test modules; its asserts should explain a failure too.
pytest.register_assert_rewrite("tests.contract")
