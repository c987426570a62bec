"""Our DOTA splitter against the DOTA devkit's ``ImgSplit`` on one large synthetic scene.

A 4000x4000 noise image with 2000 integer rotated boxes (some across the border)
is split into 1024-px windows (gap 200) by ``dotadevkit`` and by
:func:`rsformat.split.split_record` (``naming="devkit"``, ``clip=True``). Both
must give the same patches and labels; the wall time of each is written to
BENCHMARKS.md between the ``bench_split`` markers (written atomically).

Run: ``.venv/bin/python benchmarks/bench_split.py``
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import markers, write_section  # benchmarks/ is on sys.path when a script runs
from PIL import Image

from rsformat.converters.base import ConversionReport
from rsformat.converters.dota import DotaConverter
from rsformat.split import split_record
from rsmetrics.geometry import obb_to_quad
from rsmetrics.io.dota import read_dota_labels

ROOT = Path(__file__).resolve().parents[1]
START, END = markers("bench_split")


def make_scene(base: Path, size: int = 4000, n: int = 2000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (base / "images").mkdir(parents=True)
    (base / "labelTxt").mkdir()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(base / "images" / "S1.png")
    obb = np.column_stack([
        rng.uniform(-40, size + 40, n), rng.uniform(-40, size + 40, n), rng.uniform(8, 250, n),
        rng.uniform(6, 90, n), rng.uniform(-90, 90, n),
    ])  # fmt: skip
    quads = np.round(obb_to_quad(obb)).astype(int)
    names = ("plane", "ship", "small-vehicle", "harbor")
    lines = [" ".join(map(str, q)) + f" {names[i % 4]} 0" for i, q in enumerate(quads)]
    (base / "labelTxt" / "S1.txt").write_text("\n".join(lines) + "\n")


def key(labels, quads, flags):
    # vertices as a sorted multiset: clamped devkit quads can repeat a vertex, and the canonical
    # order of such a quad is not unique
    return sorted(
        (c, tuple(sorted(map(tuple, np.round(np.asarray(q, float).reshape(4, 2), 6).tolist()))), int(d))
        for c, q, d in zip(labels, quads, flags)
    )


def main() -> None:
    from dotadevkit.ops.ImgSplit import DataSplitter

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base = tmp_path / "src" / "scene"
        make_scene(base)
        t0 = time.perf_counter()
        splitter = DataSplitter(str(base), str(tmp_path / "devkit"), gap=200, subsize=1024, thresh=0.7, num_process=1)
        splitter.splitdata(1)
        splitter.pool.close()
        t_devkit = time.perf_counter() - t0

        t0 = time.perf_counter()
        (record,) = DotaConverter(base.parent).records("scene", ConversionReport("dota"))
        patches = list(split_record(record, base.parent, tmp_path / "ours", naming="devkit"))
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(split_record(record, base.parent, tmp_path / "labels", naming="devkit", write_images=False))
        t_labels = time.perf_counter() - t0

        theirs = {p.stem: p for p in (tmp_path / "devkit" / "labelTxt").glob("*.txt")}
        ours = {p.id: p for p in patches}
        assert sorted(theirs) == sorted(ours), "different windows"
        for name, path in theirs.items():
            ann = read_dota_labels(path)
            p = ours[name]
            assert key(ann.labels, ann.boxes, ann.difficult) == key(
                p.categories, [o.quad for o in p.objects], [o.difficult for o in p.objects]
            ), name
        n_objects = sum(len(p.objects) for p in patches)

    section = "\n".join([
        START,
        "## DOTA patch splitting (`benchmarks/bench_split.py`)",
        "",
        f"One 4000x4000 PNG with 2000 rotated boxes, windows 1024 / gap 200 ({len(patches)} patches, "
        f"{n_objects} patch objects); same patches, labels and difficult flags as the devkit (checked). "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, no GPU.",
        "",
        "| splitter | wall time (s) |",
        "|---|---|",
        f"| dotadevkit `ImgSplit.DataSplitter` (1 process, images + labels) | {t_devkit:.2f} |",
        f"| `rsformat.split.split_record` (images + records) | {t_ours:.2f} |",
        f"| `rsformat.split.split_record` (records only, `write_images=False`) | {t_labels:.2f} |",
        END,
    ])  # fmt: skip
    print(section)
    write_section("bench_split", section)


if __name__ == "__main__":
    sys.exit(main())
