"""Small synthetic source datasets with real images, written in the sources' own formats.

The main job and the tests convert these with the real converters: nothing is
downloaded, and no licensed sample is copied. Images are drawn with Pillow:
a textured background with the objects painted as filled polygons, so a
crop at an object's box really shows it.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> paths = write_dota_source(root / "dota", num_images=2, seed=0)
    >>> sorted(p.name for p in (root / "dota" / "train" / "labelTxt").iterdir())
    ['P0000.txt', 'P0001.txt']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from rsmetrics.geometry import obb_to_quad, quad_to_hbb

__all__ = [
    "SYNTHETIC_CLASSES",
    "draw_image",
    "write_dota_source",
    "write_geochat_source",
    "write_lrs_vqa_source",
    "write_refgeo_source",
    "write_synthetic_sources",
]

SYNTHETIC_CLASSES: tuple[str, ...] = ("plane", "ship", "small-vehicle", "storage-tank", "harbor")
_COLOURS = {
    "plane": (235, 235, 240),
    "ship": (250, 250, 250),
    "small-vehicle": (200, 30, 30),
    "storage-tank": (220, 220, 200),
    "harbor": (120, 120, 140),
}
_SIZES = {"plane": 60, "ship": 40, "small-vehicle": 14, "storage-tank": 30, "harbor": 90}


def _objects(rng: np.random.Generator, n: int, width: int, height: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for _ in range(n):
        cls = str(rng.choice(SYNTHETIC_CLASSES))
        long_side = _SIZES[cls] * rng.uniform(0.7, 1.4)
        w, h = long_side, long_side * rng.uniform(0.35, 0.9)
        cx = rng.uniform(w, width - w)
        cy = rng.uniform(w, height - w)
        quad = obb_to_quad(np.array([cx, cy, w, h, rng.uniform(-90, 90)]))
        out.append((cls, np.round(quad, 1)))
    return out


def draw_image(width: int, height: int, objects: list[tuple[str, np.ndarray]], seed: int) -> Image.Image:
    """A textured background with each object painted as its polygon."""
    rng = np.random.default_rng(seed)
    base = rng.normal(95, 18, (height // 8 + 1, width // 8 + 1, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for cls, quad in objects:
        draw.polygon([tuple(p) for p in quad.reshape(4, 2)], fill=_COLOURS[cls], outline=(20, 20, 20))
    return image


def write_dota_source(root: Path, *, num_images: int = 6, seed: int = 0, size: int = 800) -> list[Path]:
    """DOTA-v1.0 layout: ``train/images/P*.png`` and ``train/labelTxt/P*.txt`` with header lines.

    One image has no objects (its label file holds only the header), and a few
    objects carry the difficult flag.
    """
    rng = np.random.default_rng(seed)
    images, labels = root / "train" / "images", root / "train" / "labelTxt"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(num_images):
        objs = [] if i == num_images - 1 else _objects(rng, int(rng.integers(3, 12)), size, size)
        stem = f"P{i:04d}"
        draw_image(size, size, objs, seed + i).save(images / f"{stem}.png")
        lines = ["imagesource:synthetic", "gsd:0.5"]
        for k, (cls, quad) in enumerate(objs):
            lines.append(" ".join(f"{v:g}" for v in quad) + f" {cls} {int(k % 7 == 3)}")
        (labels / f"{stem}.txt").write_text("\n".join(lines) + "\n")
        written.append(images / f"{stem}.png")
    return written


def write_refgeo_source(root: Path, *, num_images: int = 4, seed: int = 1, size: int = 640) -> Path:
    """refGeo layout: ``metainfo_v2/<dataset>_train_v2.jsonl`` and ``images/<dataset>/<image_id>``."""
    rng = np.random.default_rng(seed)
    dataset = "dior_rsvg"
    (root / "images" / dataset).mkdir(parents=True, exist_ok=True)
    (root / "metainfo_v2").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    qid = 0
    for i in range(num_images):
        objs = _objects(rng, 3, size, size)
        image_id = f"{i:05d}.jpg"
        draw_image(size, size, objs, seed + i).convert("RGB").save(root / "images" / dataset / image_id, quality=90)
        for cls, quad in objs:
            x1, y1, x2, y2 = (float(v) for v in quad_to_hbb(quad))
            side = "left" if (x1 + x2) / 2 < size / 2 else "right"
            rows.append({
                "question_id": qid, "image_id": image_id, "dataset": dataset,
                "question": f"the {cls.replace('-', ' ')} on the {side}",
                "bbox": [round(x1), round(y1), round(x2), round(y2)],
                "poly": [[float(quad[2 * k]), float(quad[2 * k + 1])] for k in range(4)],
                "image_width": size, "image_height": size,
            })  # fmt: skip
            qid += 1
    path = root / "metainfo_v2" / f"{dataset}_train_v2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_geochat_source(root: Path, *, num_images: int = 3, seed: int = 2, size: int = 504) -> Path:
    """GeoChat_Instruct style: one JSON array of LLaVA conversations with task tags and 0-100 boxes."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(num_images):
        objs = _objects(rng, 2, size, size)
        name = f"G{i:04d}.png"
        draw_image(size, size, objs, seed + i).save(root / "images" / name)
        cls, quad = objs[0]
        x1, y1, x2, y2 = (int(v / size * 100) for v in quad_to_hbb(quad))
        items.append({
            "id": f"G{i:04d}", "image": name,
            "conversations": [
                {"from": "human", "value": f"<image>\n[refer] Give me the location of <p> the {cls.replace('-', ' ')} </p>"},
                {"from": "gpt", "value": f"{{<{x1}><{y1}><{x2}><{y2}>|<0>}}"},
                {"from": "human", "value": "How many objects are there in the image ?"},
                {"from": "gpt", "value": f"There are {len(objs)} objects.."},
            ],
        })  # fmt: skip
    path = root / "GeoChat_Instruct.json"
    path.write_text(json.dumps(items, indent=1))
    return path


def write_lrs_vqa_source(root: Path, *, seed: int = 3, size: int = 2400) -> Path:
    """LRS-VQA benchmark style: one large image and a JSONL of questions, some with an ``hbox``."""
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True, exist_ok=True)
    objs = _objects(rng, 40, size, size)
    draw_image(size, size, objs, seed).save(root / "image" / "L0001.png")
    rows = []
    for k, (cls, quad) in enumerate(objs[:6]):
        hbb = [round(float(v)) for v in quad_to_hbb(quad)]
        rows.append({
            "question_id": f"STAR_{k}", "image": "image/L0001.png", "category": "object category",
            "text": "What is the object in the highlighted region?\n Answer the question using a single word or phrase.",
            "ground_truth": cls.replace("-", " "), "hbox": hbb, "rbox": [float(v) for v in quad],
            "image_size": [size, size],
        })  # fmt: skip
    count = sum(1 for c, _ in objs if c == "ship")
    rows.append({
        "question_id": "STAR_count", "image": "image/L0001.png", "category": "count",
        "text": "How many ships are there?\n Answer the question using a single word or phrase.",
        "ground_truth": str(count), "image_size": [size, size],
    })  # fmt: skip
    path = root / "LRS_VQA_merged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_synthetic_sources(root: Path, *, seed: int = 0) -> dict[str, Path]:
    """Write every synthetic source under ``root``; returns source name -> its root folder."""
    root = Path(root)
    out = {
        "dota": root / "dota",
        "refgeo": root / "refgeo",
        "geochat_instruct": root / "geochat",
        "lrs_vqa": root / "lrs_vqa",
    }
    write_dota_source(out["dota"], seed=seed)
    write_refgeo_source(out["refgeo"], seed=seed + 1)
    write_geochat_source(out["geochat_instruct"], seed=seed + 2)
    write_lrs_vqa_source(out["lrs_vqa"], seed=seed + 3)
    return out
