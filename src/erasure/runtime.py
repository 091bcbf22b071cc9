"""Process-wide settings for batch runs, applied by the command line, never by the library."""

from __future__ import annotations

import gc

__all__ = ["BATCH_GC_THRESHOLDS", "tune_gc_for_batches"]

#: (generation 0, 1, 2) thresholds for batch runs; CPython's defaults are (700, 10, 10).
BATCH_GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc_for_batches() -> None:
    """Fit CPython's cyclic garbage collector to large batch runs (``erasure`` calls it once).

    A batch of a thousand subjects makes tens of thousands of small objects (findings, rows,
    outcomes) that live until the batch ends. Under the default thresholds they set off a
    young collection every 700 allocations and, since they outlive those, repeated full
    collections that walk every object in the process: a quarter of the sql connector's time
    in ``bench/sql_erase.py``. Reference counting frees these objects as soon as a batch is
    done; only garbage cycles wait for the collector, so collecting less often costs little.
    Objects alive at start-up (modules, settings) are moved out of collections altogether.

    A program that embeds erasure keeps its own collector policy: it may call this, or not.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*BATCH_GC_THRESHOLDS)
