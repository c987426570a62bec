"""The reference adapters of the conformance tests, shared with the benchmarks.

``tests/rsmetrics/reference`` holds the code that writes our in-memory data in
the DOTA devkit's file formats and in COCO JSON. The benchmarks import it from
there (rather than keeping a copy) so that both measure the same conversion.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1] / "tests" / "rsmetrics"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from reference.cocotools import to_coco  # noqa: E402
from reference.devkit import write_devkit_inputs  # noqa: E402

__all__ = ["to_coco", "write_devkit_inputs"]
