from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# let tests import the reference adapters as `reference.*`
sys.path.insert(0, str(Path(__file__).parent))

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    """The shared sample files (real dataset excerpts); never copied into the repo."""
    root = Path(os.environ.get("RSCOVLM_SAMPLES", SAMPLES)).resolve()
    if not root.is_dir():
        pytest.skip(f"shared samples not found at {root}")
    return root
