"""Keep Python's garbage collector from pausing a service worker (measured in bench/serving.py)."""

from __future__ import annotations

import gc

# Requests leave ~100,000 short-lived objects alive (BentoML's timers and traces, for the request
# timeout); at the default thresholds a full collection over them ran every ~20 s and took
# 50-90 ms. Rarer young collections keep full ones out of a 30 s window.
YOUNG_THRESHOLD = 20_000


def freeze_long_lived() -> None:
    """Collect, then move everything alive now (the loaded model, modules, settings) out of the
    collector's reach, so a full collection scans only per-request objects (pauses of ~100 ms ->
    ~1 ms). Call once a worker has loaded what it serves, and again after swapping the model."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)
