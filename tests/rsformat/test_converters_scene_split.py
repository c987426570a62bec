"""Seeded per-class splits for scene-classification sets without an official split (AID)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport


def _aid(root: Path) -> None:
    for cls in ("Airport", "DenseResidential"):
        (root / "AID" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8)).save(root / "AID" / cls / f"{cls.lower()}_{i}.jpg")


def _split(root: Path, split: str, **options) -> list[str]:
    conv = get_converter("aid")(root, **options)
    return [r.images[0] for r in conv.records(split, ConversionReport("aid"))]


def test_random_split_is_per_class_disjoint_and_reproducible(tmp_path):
    _aid(tmp_path)
    spec = {"train": 0.2, "test": 0.8}
    assert get_converter("aid")(tmp_path, random_split=spec).splits() == ["train", "test"]
    train, test = _split(tmp_path, "train", random_split=spec), _split(tmp_path, "test", random_split=spec)
    # 20 % of each class of 10 images: 2 + 2 in train, 8 + 8 in test, together every image once
    assert len(train) == 4 and len(test) == 16 and not set(train) & set(test)
    assert sum("Airport/" in p for p in train) == 2
    assert train == _split(tmp_path, "train", random_split=spec)  # same seed, same split
    other = _split(tmp_path, "train", random_split=spec, seed=1)
    assert len(other) == 4 and other != train


@pytest.mark.parametrize("spec", [{"train": 0.5}, {"train": 0.2, "test": 0.7}, {"train": -1, "test": 2}, [0.2, 0.8]])
def test_bad_random_split(tmp_path, spec):
    _aid(tmp_path)
    with pytest.raises(ValueError, match="random_split"):
        get_converter("aid")(tmp_path, random_split=spec).splits()
