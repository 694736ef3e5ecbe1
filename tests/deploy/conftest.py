"""Fixtures of the deployment checks: the Helm SDK kept quiet, a chart to break in a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import helm_python as helm
import pytest

from tests.deploy.deploy_helpers import CHART


@pytest.fixture(scope="module", autouse=True)
def _quiet_helm() -> None:
    # The Helm SDK logs template `fail` calls on stderr; the tests assert on the errors instead.
    helm.disable_logging()


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "counter"
    shutil.copytree(CHART, copy)
    return copy
