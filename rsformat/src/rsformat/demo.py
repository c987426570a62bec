"""The main job's data part: write synthetic sources, convert, validate, load back, render.

Run with ``python -m rsformat.demo --output outputs/demo``. It writes four small
sources with real images in their own formats (DOTA labels and images, a
refGeo JSONL, a GeoChat-style conversation file, an LRS-VQA question file on
one large image), converts each with its registered converter into one
Hugging Face dataset folder (a config per source, with a card), validates it,
loads every config back with ``datasets.load_dataset`` and prints one record
of each as a model would see it (the zoom record as a tool-call chain).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import datasets

from rsformat.converters import ConversionReport, get_converter
from rsformat.hub import load_records, write_dataset
from rsformat.render import RenderFrame, RenderStyle, format_messages, render
from rsformat.synthetic import write_synthetic_sources
from rsformat.validate import validate_dataset

__all__ = ["main"]


def _section(title: str) -> None:
    print(f"\n=== {title} ===")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsformat.demo", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", default="outputs/demo", help="folder for the sources and the dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.output)
    sources = write_synthetic_sources(out / "sources", seed=args.seed)
    dataset_dir = out / "dataset"

    _section("Converting the synthetic sources with rsformat")
    splits: dict[str, list[str]] = {}
    for name, root in sources.items():
        cls = get_converter(name)
        converter = cls(root)
        report = ConversionReport(cls.name)
        card = {"source": cls.name, "description": cls.description, "license": cls.license, "citation": cls.citation}
        info = write_dataset(
            {split: converter.records(split, report) for split in converter.splits()},
            dataset_dir,
            family=cls.family,
            config_name=cls.name,
            embed_images=True,
            image_root=root,
            card_info=card,
            report=report,
        )
        splits[cls.name] = list(info["splits"])
        print(report.to_text())
        print("  " + ", ".join(f"{s}: {m['num_examples']} records" for s, m in info["splits"].items()))

    _section("Validating every record")
    validation = validate_dataset(dataset_dir, progress=False)
    print(validation.to_text())

    _section("Loading back with datasets.load_dataset and rendering one record per config")
    for name in sources:
        cls = get_converter(name)
        split = splits[cls.name][0]
        ds = datasets.load_dataset(str(dataset_dir), name=cls.name, split=split)
        print(f"{cls.name} ({split}): {ds.num_rows} rows, columns {ds.column_names}")
        record = next(iter(load_records(dataset_dir, cls.name, split)))
        style = RenderStyle.parse("plain-quad") if cls.family == "detection" else RenderStyle()
        frame = RenderFrame.smart()
        print(format_messages(render(record, frame, style)))

    print(f"\ndataset with {len(sources)} configs written to {dataset_dir}/ in {time.perf_counter() - start:.1f} s")
    return 0 if validation.ok else 1


if __name__ == "__main__":
    sys.exit(main())
