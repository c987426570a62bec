"""Conversion throughput: DOTA label parsing, parquet writing, ``convert --num-proc``.

Three measurements, written to BENCHMARKS.md between the ``bench_convert``
markers (atomically; the other sections are kept):

a. **DOTA labels to canonical objects, one core.** 5,000 generated label files
   (~150k objects, two header lines each) are read and turned into objects with
   canonical quads: ours is :func:`rsmetrics.io.dota.read_dota_labels` (lenient,
   as the converter reads) + :meth:`rsformat.records.DetectionObject.from_quads`
   (canonical quad, hbb and obb), per file and batched over all files; the baseline is the straightforward per-line
   loop (open, split lines, ``float()`` every token, one dict per object with its
   canonical quad from :func:`rsmetrics.geometry.canonical_quad` on one row).
   Both give the same quads (checked). Best of 3.
b. **Parquet writing** with :func:`rsformat.hub.write_dataset`: synthetic
   detection records in path mode and in embedded mode (PNG bytes read and
   embedded). Best of 3.
c. **``rsformat convert dota --num-proc 1`` vs ``2``** on a synthetic DOTA source
   (images drawn by :func:`rsformat.synthetic.write_dota_source`), in path and
   embedded mode, each run in a fresh process; the outputs are checked
   byte-identical. One run each.

Run: ``.venv/bin/python benchmarks/bench_convert.py`` (``--quick`` for a small
smoke run that does not touch BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import cpu_name, markers, write_section  # benchmarks/ is on sys.path when a script runs

from rsformat.hub import write_dataset
from rsformat.records import DetectionObject, DetectionRecord
from rsformat.synthetic import write_dota_source
from rsmetrics.geometry import canonical_quad, obb_to_quad
from rsmetrics.io._common import ReadReport
from rsmetrics.io.dota import dota_classes, read_dota_label_dir, read_dota_labels

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
START, END = markers("bench_convert")


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


# --------------------------------------------------------------------------- (a) labels


def make_label_files(folder: Path, files: int, per_file: int, seed: int = 0) -> int:
    """``files`` DOTA label files of ``per_file`` objects on average; returns the object count."""
    rng = np.random.default_rng(seed)
    classes = dota_classes("1.0")
    folder.mkdir(parents=True)
    total = 0
    for i in range(files):
        n = int(rng.integers(per_file // 2, per_file * 3 // 2 + 1))
        obb = np.column_stack([
            rng.uniform(0, 1024, n), rng.uniform(0, 1024, n), rng.uniform(8, 200, n),
            rng.uniform(6, 80, n), rng.uniform(-90, 90, n),
        ])  # fmt: skip
        quads = obb_to_quad(obb)
        lines = ["imagesource:GoogleEarth", "gsd:0.146343590398"]
        for q in quads:
            lines.append(
                " ".join(f"{v:.1f}" for v in q) + f" {classes[int(rng.integers(15))]} {int(rng.random() < 0.1)}"
            )
        (folder / f"P{i:05d}.txt").write_text("\n".join(lines) + "\n")
        total += n
    return total


def ours_labels(files: list[Path]) -> list[tuple[DetectionObject, ...]]:
    """rsmetrics reader (lenient, as the converter) + vectorised canonical objects."""
    stats = ReadReport()
    out = []
    for path in files:
        ann = read_dota_labels(path, strict=False, stats=stats)
        out.append(DetectionObject.from_quads(ann.labels, ann.boxes, ann.difficult))
    return out


def ours_labels_batched(folder: Path) -> list[tuple[DetectionObject, ...]]:
    """rsmetrics directory reader, then one vectorised canonicalisation over all files, cut back per file."""
    anns, _ = read_dota_label_dir(folder, strict=False)
    if not anns:
        return []
    labels = [name for a in anns for name in a.labels]
    objects = DetectionObject.from_quads(
        labels, np.concatenate([a.boxes for a in anns]), np.concatenate([a.difficult for a in anns])
    )
    out, start = [], 0
    for a in anns:
        out.append(objects[start : start + len(a)])
        start += len(a)
    return out


def ours_labels_arrays(folder: Path) -> list[tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
    """The baseline's output (categories, canonical quads, flags) as arrays: read, then canonicalise once."""
    anns, _ = read_dota_label_dir(folder, strict=False)
    if not anns:
        return []
    quads = canonical_quad(np.concatenate([a.boxes for a in anns]))
    out, start = [], 0
    for a in anns:
        out.append((a.labels, quads[start : start + len(a)], a.difficult))
        start += len(a)
    return out


def baseline_labels(files: list[Path]) -> list[list[dict[str, Any]]]:
    """The per-line loop: float() per token, canonical_quad per object."""
    out = []
    for path in files:
        objects = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                tokens = line.split()
                if len(tokens) < 9:
                    continue  # header or blank
                try:
                    coords = [float(t) for t in tokens[:8]]
                except ValueError:
                    continue
                difficult = int(tokens[9]) if len(tokens) > 9 else 0
                quad = canonical_quad(np.array(coords, dtype=np.float64))
                objects.append({"category": tokens[8], "quad": quad.tolist(), "difficult": difficult})
        out.append(objects)
    return out


def bench_labels(work: Path, files: int, per_file: int, repeat: int) -> dict[str, Any]:
    folder = work / "labels"
    n_objects = make_label_files(folder, files, per_file)
    paths = sorted(folder.glob("*.txt"))
    mb = sum(p.stat().st_size for p in paths) / 1e6
    ours_labels(paths[:50])  # warm imports and caches
    baseline_labels(paths[:50])
    t_ours, ours = best(lambda: ours_labels(paths), repeat)
    t_batch, batched = best(lambda: ours_labels_batched(folder), repeat)
    t_arrays, arrays = best(lambda: ours_labels_arrays(folder), repeat)
    t_base, base = best(lambda: baseline_labels(paths), repeat)
    assert batched == ours
    for (labels, quads, flags), b in zip(arrays, base, strict=True):
        assert list(labels) == [d["category"] for d in b] and flags.tolist() == [d["difficult"] for d in b]
        assert np.allclose(quads, np.array([d["quad"] for d in b]).reshape(-1, 8), atol=1e-9)
    for a, b in zip(ours, base, strict=True):
        assert len(a) == len(b)
        for o, d in zip(a, b, strict=True):
            assert o.category == d["category"] and o.difficult == d["difficult"]
            assert np.allclose(o.quad, d["quad"], atol=1e-9), (o, d)
    return {
        "files": files,
        "objects": n_objects,
        "mb": mb,
        "ours_s": t_ours,
        "batch_s": t_batch,
        "arrays_s": t_arrays,
        "base_s": t_base,
    }


# --------------------------------------------------------------------------- (b) writing


def make_records(n: int, per_image: int, images: list[str], seed: int = 1) -> list[DetectionRecord]:
    rng = np.random.default_rng(seed)
    classes = dota_classes("1.0")
    out = []
    for i in range(n):
        k = int(rng.integers(per_image // 2, per_image * 3 // 2 + 1))
        obb = np.column_stack([
            rng.uniform(0, 512, k), rng.uniform(0, 512, k), rng.uniform(8, 120, k),
            rng.uniform(6, 60, k), rng.uniform(-90, 90, k),
        ])  # fmt: skip
        names = [classes[j] for j in rng.integers(0, 15, k)]
        objects = DetectionObject.from_quads(names, obb_to_quad(obb), (rng.random(k) < 0.1).astype(int))
        out.append(DetectionRecord(f"R{i:06d}", "bench", "train", images[i % len(images)], 512, 512, objects))
    return out


def bench_write(work: Path, n_path: int, n_embed: int, per_image: int, repeat: int) -> dict[str, Any]:
    from PIL import Image

    img_root = work / "img"
    img_root.mkdir()
    rng = np.random.default_rng(2)
    names = []
    for i in range(64):
        # smooth noise compresses like an aerial patch (a few hundred KB for 512 px)
        base = rng.normal(100, 25, (64, 64, 3)).clip(0, 255).astype(np.uint8)
        Image.fromarray(base).resize((512, 512), Image.Resampling.BICUBIC).save(img_root / f"I{i:02d}.png")
        names.append(f"I{i:02d}.png")
    image_mb = sum((img_root / n).stat().st_size for n in names) / len(names) / 1e6
    result: dict[str, Any] = {"image_mb": image_mb, "per_image": per_image}
    for mode, n in (("path", n_path), ("embedded", n_embed)):
        records = make_records(n, per_image, names)
        out = work / f"write_{mode}"

        def run(records: list[DetectionRecord] = records, out: Path = out, mode: str = mode) -> dict[str, Any]:
            return write_dataset(
                {"train": records},
                out,
                family="detection",
                config_name="bench",
                embed_images=mode == "embedded",
                image_root=img_root,
            )

        t, info = best(run, repeat)
        disk = sum(p.stat().st_size for p in (out / "bench").glob("*.parquet")) / 1e6
        assert info["splits"]["train"]["num_examples"] == n
        result[mode] = {"records": n, "objects": sum(len(r.objects) for r in records), "s": t, "mb": disk}
    return result


# --------------------------------------------------------------------------- (c) --num-proc

_CHILD = """
import sys, time
from rsformat.cli import main
t0 = time.perf_counter()
code = main(sys.argv[1:])
print("@@", time.perf_counter() - t0, code)
"""


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.parquet")):
        h.update(p.read_bytes())
    return h.hexdigest()


def bench_num_proc(work: Path, images: int, size: int) -> dict[str, Any]:
    src = work / "dota_src"
    write_dota_source(src, num_images=images, seed=0, size=size)
    n_files = sum(1 for _ in src.rglob("*") if _.is_file())
    src_mb = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 1e6
    result: dict[str, Any] = {"images": images, "size": size, "files": n_files, "src_mb": src_mb}
    for mode in ("--no-embed-images", "--embed-images"):
        digests = {}
        for n in (1, 2):
            out = work / f"conv{mode}{n}"
            argv = ["convert", "dota", "--input", str(src), "--output", str(out), "--num-proc", str(n)]
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, *argv, mode, "--no-progress"],
                capture_output=True,
                text=True,
                check=True,
            )
            line = next(x for x in proc.stdout.splitlines() if x.startswith("@@"))
            seconds, code = line.split()[1:]
            assert code == "0", proc.stdout + proc.stderr
            result[(mode, n)] = float(seconds)
            digests[n] = _digest(out / "dota")
        assert digests[1] == digests[2], "--num-proc 2 wrote different parquet"
    return result


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = cpu_name()
    import pyarrow

    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} usable cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}, pyarrow {pyarrow.__version__}; load average before the run "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def report(a: dict[str, Any], b: dict[str, Any], c: dict[str, Any], where: str) -> str:
    ours_rate, base_rate = a["objects"] / a["ours_s"], a["objects"] / a["base_s"]
    batch_rate = a["objects"] / a["batch_s"]
    arrays_rate = a["objects"] / a["arrays_s"]

    def mark(rate: float) -> str:
        return ("✅" if rate >= 100_000 else "❌") + f" {rate / 1000:,.0f}k objects/s"

    lines = [
        START,
        "## Conversion throughput (`benchmarks/bench_convert.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {where}.",
        "",
        f"**(a) DOTA label files to canonical objects, one core** ({a['files']:,} files, {a['objects']:,} objects, "
        f"{a['mb']:.1f} MB of text; best of 3; same categories, flags and canonical quads from both, checked):",
        "",
        "| reader | wall s | objects/s | speedup |",
        "|---|---|---|---|",
        f"| baseline: per-line `float()` + `canonical_quad` per object (dict with the quad) | {a['base_s']:.2f} | "
        f"{base_rate:,.0f} | 1× |",
        f"| ours, the baseline's output (categories, flags, canonical quads) as arrays: `read_dota_label_dir` + "
        f"one `canonical_quad` | {a['arrays_s']:.2f} | {arrays_rate:,.0f} | **{arrays_rate / base_rate:.1f}×** |",
        f"| ours, per file (as `DotaConverter` does): `read_dota_labels` + `DetectionObject.from_quads` "
        f"(quad, hbb and obb) | {a['ours_s']:.2f} | {ours_rate:,.0f} | **{ours_rate / base_rate:.1f}×** |",
        f"| ours, batched: `read_dota_label_dir` + one `DetectionObject.from_quads` over all files, cut per file | "
        f"{a['batch_s']:.2f} | {batch_rate:,.0f} | **{batch_rate / base_rate:.1f}×** |",
        "",
        f"Target ≥ 100k objects/s for parsing and canonicalisation: {mark(arrays_rate)}. Building full records "
        f"(also hbb and obb, one Python object per object): per file {mark(ours_rate)}; batched {mark(batch_rate)}; "
        "per file, the fixed cost of the numpy calls of `canonical_quad` / `quad_to_obb` on ~30 rows dominates.",
        "",
        f"**(b) `rsformat.hub.write_dataset`, detection records** (about {b['per_image']} objects each; embedded "
        f"images are 512 px PNGs of {b['image_mb'] * 1000:.0f} KB on average; best of 3; MB/s is parquet bytes "
        "written per second):",
        "",
        "| mode | records | objects | wall s | records/s | parquet MB | MB/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("path", "embedded"):
        m = b[mode]
        lines.append(
            f"| {mode} | {m['records']:,} | {m['objects']:,} | {m['s']:.2f} | {m['records'] / m['s']:,.0f} | "
            f"{m['mb']:.1f} | {m['mb'] / m['s']:.1f} |"
        )
    lines += [
        "",
        f"**(c) `rsformat convert dota`, `--num-proc 1` vs `2`** ({c['images']} synthetic {c['size']} px images with "
        f"labels, {c['src_mb']:.0f} MB; one run each in a fresh process, timing `main()` without the interpreter "
        "start; outputs byte-identical, checked):",
        "",
        "| images | --num-proc 1 (s) | --num-proc 2 (s) | speedup |",
        "|---|---|---|---|",
    ]
    for mode, label in (("--no-embed-images", "relative paths"), ("--embed-images", "embedded")):
        t1, t2 = c[(mode, 1)], c[(mode, 2)]
        lines.append(f"| {label} | {t1:.2f} | {t2:.2f} | {t1 / t2:.2f}× |")
    lines += [
        "",
        "Workers list the split once, parse the labels, read the image headers and build the records; the parent "
        "unpickles them from the workers' queues, embeds the image bytes and writes the parquet shards alone, so "
        "the gain is bounded by that serial part (larger in embedded mode). With 2 cores, the parent and two "
        f"workers share them with whatever else runs (load average after the run: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}).",
        END,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run, BENCHMARKS.md left alone")
    args = ap.parse_args(argv)
    quick = args.quick
    where = machine()
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        a = bench_labels(work, 200 if quick else 5000, 30, 1 if quick else 3)
        print(f"(a) ours {a['objects'] / a['ours_s']:,.0f} obj/s, baseline {a['objects'] / a['base_s']:,.0f} obj/s")
        b = bench_write(work, 500 if quick else 20000, 100 if quick else 1000, 30, 1 if quick else 3)
        print(f"(b) {b}")
        c = bench_num_proc(work, 12 if quick else 1000, 512)
        print(f"(c) {c}")
    section = report(a, b, c, where)
    print(section)
    if not quick:
        write_section("bench_convert", section)
        print(f"updated {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
