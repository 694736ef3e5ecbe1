from __future__ import annotations

import subprocess
import sys


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a fresh interpreter: freezing is for the server process, not this test process.
    code = (
        "import gc; from entrypoints.runtime import tune_garbage_collector, YOUNG_GENERATION_THRESHOLD as T;"
        "before = gc.get_freeze_count(); tune_garbage_collector();"
        "assert gc.get_freeze_count() > before, gc.get_freeze_count();"
        "assert gc.get_threshold()[0] == T, gc.get_threshold()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
