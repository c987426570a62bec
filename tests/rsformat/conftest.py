"""Fixtures of the rsformat tests; helpers live in rsformat_fixtures (importable by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# let the tests import their helper module with --import-mode=importlib
sys.path.insert(0, str(Path(__file__).parent))

from rsformat_fixtures import make_image


@pytest.fixture()
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    make_image(root / "images" / "a.png", 64, 48)
    make_image(root / "images" / "b.png", 32, 32, (200, 10, 10))
    make_image(root / "images" / "big.png", 200, 150, (0, 200, 0))
    return root
