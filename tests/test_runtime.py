"""The collector policy for batch runs: set by the ``erasure`` command, never by the library."""

from __future__ import annotations

import subprocess
import sys

from erasure.runtime import BATCH_GC_THRESHOLDS

PROBE = """
import gc, sys
before = gc.get_threshold()
import erasure, erasure.orchestrator, erasure.cli
assert gc.get_threshold() == before, "importing the library changed the collector"
assert gc.get_freeze_count() == 0
sys.argv = ["erasure", "--help"]
try:
    erasure.cli.main()
except SystemExit:
    pass
print(gc.get_threshold(), gc.get_freeze_count() > 0)
"""


def test_cli_tunes_the_collector_and_the_library_does_not() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip().splitlines()[-1]
    assert out == f"{BATCH_GC_THRESHOLDS} True"
