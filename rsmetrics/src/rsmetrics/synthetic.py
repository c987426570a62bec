"""Deterministic synthetic evaluation sets, for demos, tests and benchmarks.

Nothing here is downloaded: every set is generated from a seed. The detection
workload imitates DOTA patches: a skewed class distribution, small and large
objects, near-rectangular quads with corner noise, difficult and truncated
flags, and a detector's output with localisation noise, duplicates, class
confusion and background false positives.

Example:
    >>> gts, preds = make_detection_workload(num_images=4, seed=0)
    >>> len(gts), sum(len(g) for g in gts) > 0
    (4, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.geometry import obb_to_quad

__all__ = [
    "DOTA_LIKE_CLASSES",
    "GroundingSample",
    "VQASample",
    "make_detection_workload",
    "make_grounding_set",
    "make_vqa_set",
]

DOTA_LIKE_CLASSES: tuple[str, ...] = (
    "plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
    "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
    "swimming-pool", "helicopter",
)  # fmt: skip
# relative frequency and typical long side in pixels, roughly DOTA-v1.0's
_CLASS_FREQ = np.array([8, 1, 2, 0.6, 30, 20, 28, 3, 0.8, 6, 0.6, 0.5, 6, 2, 0.6])
_CLASS_SIZE = np.array([60, 110, 90, 200, 14, 35, 30, 50, 45, 28, 150, 100, 70, 25, 40])


def _objects(rng: np.random.Generator, n: int, size: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    freq = _CLASS_FREQ[:num_classes] if num_classes <= len(_CLASS_FREQ) else np.ones(num_classes)
    typical = _CLASS_SIZE[:num_classes] if num_classes <= len(_CLASS_SIZE) else np.full(num_classes, 40.0)
    cls = rng.choice(num_classes, size=n, p=freq / freq.sum())
    long_side = typical[cls] * rng.lognormal(0.0, 0.3, n)
    aspect = rng.uniform(0.35, 1.0, n)
    centre = rng.uniform(0, size, (n, 2))
    angle = rng.uniform(-90, 90, n)
    obb = np.column_stack([centre, long_side, long_side * aspect, angle])
    return cls, obb


def make_detection_workload(
    num_images: int = 5500,
    *,
    seed: int = 0,
    image_size: int = 512,
    classes: tuple[str, ...] = DOTA_LIKE_CLASSES,
    mean_objects: float = 5.5,
    recall: float = 0.82,
    duplicate_rate: float = 0.05,
    confusion_rate: float = 0.04,
    false_positives_per_image: float = 2.5,
    difficult_rate: float = 0.08,
    truncated_rate: float = 0.05,
    corner_noise: float = 0.7,
    with_scores: bool = True,
) -> tuple[list[ImageAnnotations], list[ImageDetections]]:
    """A DOTA-val-sized detection set: ground truth and a detector's output.

    The defaults give about 30,000 objects and 40,000 predictions on 5,500
    patches of 512 px, the scale of DOTA-v1.0 val split into 512 px patches.
    Scores are drawn so that good localisations tend to score higher; with
    ``with_scores=False`` the predictions carry none (a VLM).
    """
    rng = np.random.default_rng(seed)
    num_classes = len(classes)
    gts: list[ImageAnnotations] = []
    preds: list[ImageDetections] = []
    for i in range(num_images):
        image_id = f"P{i:05d}__512__0___0" if image_size == 512 else f"P{i:05d}"
        n = rng.poisson(mean_objects)
        cls, obb = _objects(rng, n, image_size, num_classes)
        quads = obb_to_quad(obb) + rng.normal(0, corner_noise, (n, 8)) if n else np.zeros((0, 8))
        flag = np.zeros(n, np.int64)
        u = rng.random(n)
        flag[u < difficult_rate] = 1
        flag[(u >= difficult_rate) & (u < difficult_rate + truncated_rate)] = 2
        gts.append(ImageAnnotations(image_id, quads, [classes[c] for c in cls], difficult=flag))

        found = rng.random(n) < recall
        k = int(found.sum())
        jitter = rng.normal(0, 1, (k, 5)) * np.array([2.0, 2.0, 0.08, 0.08, 4.0])
        det_obb = obb[found].copy()
        det_obb[:, :2] += jitter[:, :2] * np.maximum(1.0, det_obb[:, 3:4] / 10)
        det_obb[:, 2:4] *= np.exp(jitter[:, 2:4])
        det_obb[:, 4] += jitter[:, 4]
        quality = np.exp(-np.abs(jitter).sum(1) / 3)
        det_cls = cls[found].copy()
        confused = rng.random(k) < confusion_rate
        det_cls[confused] = rng.integers(0, num_classes, int(confused.sum()))
        dup = rng.random(k) < duplicate_rate
        dup_obb = det_obb[dup] + rng.normal(0, 1.5, (int(dup.sum()), 5)) * np.array([1, 1, 1, 1, 2])
        num_fp = rng.poisson(false_positives_per_image)
        fp_cls, fp_obb = _objects(rng, num_fp, image_size, num_classes)
        all_obb = np.concatenate([det_obb, dup_obb, fp_obb])
        all_obb[:, 2:4] = np.abs(all_obb[:, 2:4]) + 1.0
        all_cls = np.concatenate([det_cls, det_cls[dup], fp_cls])
        score = np.concatenate([
            0.45 + 0.5 * quality * rng.random(k) ** 0.3,
            0.2 + 0.5 * rng.random(int(dup.sum())),
            0.05 + 0.6 * rng.random(num_fp),
        ])  # fmt: skip
        perm = rng.permutation(len(all_cls))
        preds.append(
            ImageDetections(
                image_id,
                obb_to_quad(all_obb[perm]) if len(perm) else np.zeros((0, 8)),
                [classes[c] for c in all_cls[perm]],
                scores=score[perm] if with_scores else None,
            )
        )
    return gts, preds


@dataclass(frozen=True)
class GroundingSample:
    """One referring expression with its GT box and a model's answer text."""

    sample_id: str
    dataset: str
    expression: str
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    gt_hbb: tuple[float, float, float, float]
    answer: str


def make_grounding_set(num_samples: int = 200, *, seed: int = 0) -> list[GroundingSample]:
    """Synthetic grounding answers in RSCoVLM's plain format, in the model's input frame.

    Each sample's answer is ``"x1,y1,x2,y2 expression"`` in the resized input
    frame, with noise of varying size; a few answers are unparsable (they
    count as wrong).
    """
    rng = np.random.default_rng(seed)
    out = []
    names = ("dior_rsvg", "rsvg", "vrsbench")
    things = (
        "the white car",
        "the large storage tank",
        "the ship near the dock",
        "the plane on the left",
        "the bridge",
    )
    for i in range(num_samples):
        w, h = int(rng.integers(512, 1600)), int(rng.integers(512, 1600))
        scale = min(1.0, (1008 * 1008 / (w * h)) ** 0.5)
        iw, ih = max(28, round(w * scale / 28) * 28), max(28, round(h * scale / 28) * 28)
        bw, bh = rng.uniform(20, 300), rng.uniform(20, 300)
        x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        gt = (x1, y1, x1 + bw, y1 + bh)
        noise = rng.normal(0, rng.choice([0.03, 0.15, 0.5]), 4) * np.array([bw, bh, bw, bh])
        px = (np.array(gt) + noise) * np.array([iw / w, ih / h, iw / w, ih / h])
        expression = str(rng.choice(things))
        if rng.random() < 0.05:
            answer = "I cannot find it."
        else:
            answer = ",".join(str(round(v)) for v in px) + " " + expression
        out.append(
            GroundingSample(
                f"g{i:04d}", names[i % 3], expression, (w, h), (iw, ih), tuple(float(v) for v in gt), answer
            )
        )
    return out


@dataclass(frozen=True)
class VQASample:
    """One question with its ground truth, type and a model's answer."""

    question_id: str
    question_type: str
    ground_truth: str
    prediction: str


def make_vqa_set(num_samples: int = 300, *, seed: int = 0) -> list[VQASample]:
    """Synthetic RSVQA-style answers: presence, comparison, count and rural/urban questions."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_samples):
        kind = str(rng.choice(["presence", "comparison", "count", "rural_urban"]))
        if kind in ("presence", "comparison"):
            gt = str(rng.choice(["yes", "no"]))
            other = "no" if gt == "yes" else "yes"
            pred = gt if rng.random() < 0.8 else other
            if rng.random() < 0.2:
                pred = pred.capitalize() + "."
        elif kind == "count":
            gt = str(int(rng.integers(0, 12)))
            pred = gt if rng.random() < 0.5 else str(int(rng.integers(0, 12)))
        else:
            gt = str(rng.choice(["rural", "urban"]))
            pred = gt if rng.random() < 0.9 else ("urban" if gt == "rural" else "rural")
        if rng.random() < 0.02:
            pred = ""
        out.append(VQASample(f"q{i:04d}", kind, gt, pred))
    return out
