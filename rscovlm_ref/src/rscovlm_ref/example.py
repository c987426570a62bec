"""The CPU example's data: rsformat's embedded synthetic sources, converted into one dataset folder.

``prepare_example(out)`` writes the four synthetic sources of
:mod:`rsformat.synthetic` (DOTA-style detection, refGeo grounding, a GeoChat
conversation file, an LRS-VQA question file on one large image) under
``out/sources``, converts each with its rsformat converter into
``out/dataset`` (one config per source, images embedded), and returns the
dataset folder. ``configs/cpu_mixture.yaml`` mixes its configs.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["prepare_example"]


def prepare_example(out: str | os.PathLike[str], *, seed: int = 0, quiet: bool = False) -> Path:
    """Write and convert the synthetic sources; returns ``out/dataset``."""
    from rsformat.converters import ConversionReport, get_converter
    from rsformat.hub import write_dataset
    from rsformat.synthetic import write_synthetic_sources

    out = Path(out)
    sources = write_synthetic_sources(out / "sources", seed=seed)
    dataset_dir = out / "dataset"
    for name, root in sources.items():
        cls = get_converter(name)
        converter = cls(root)
        report = ConversionReport(cls.name)
        info = write_dataset(
            {split: converter.records(split, report) for split in converter.splits()},
            dataset_dir,
            family=cls.family,
            config_name=cls.name,
            embed_images=True,
            image_root=root,
            card_info={"source": cls.name, "description": cls.description, "license": cls.license},
            report=report,
        )
        if not quiet:
            counts = ", ".join(f"{s}: {m['num_examples']}" for s, m in info["splits"].items())
            print(f"  {cls.name:<18} {cls.family:<12} {counts}")
    return dataset_dir
