"""Run the DOTA devkit's Task1 evaluation (``dotadevkit`` on PyPI) on in-memory data.

The devkit reads files, so the data is written in its formats first: one label
file per image (``x1 .. y4 class difficult``), one ``Task1_<class>.txt`` per
class (``image score x1 .. y4``) and an image-set file.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np


def write_devkit_inputs(gts, preds, classes, root: Path) -> tuple[str, str, str]:
    labels = root / "labelTxt"
    labels.mkdir(parents=True, exist_ok=True)
    for g in gts:
        with open(labels / f"{g.image_id}.txt", "w") as f:
            for quad, name, flag in zip(g.boxes, g.labels, g.difficult):
                f.write(" ".join(repr(float(v)) for v in quad) + f" {name} {int(flag)}\n")
    (root / "imageset.txt").write_text("".join(f"{g.image_id}\n" for g in gts))
    lines: dict[str, list[str]] = {c: [] for c in classes}
    for d in preds:
        scores = d.scores if d.scores is not None else np.ones(len(d))
        for quad, name, s in zip(d.boxes, d.labels, scores):
            lines[name].append(f"{d.image_id} {float(s)!r} " + " ".join(repr(float(v)) for v in quad) + "\n")
    for c in classes:
        (root / f"Task1_{c}.txt").write_text("".join(lines[c]))
    return str(root / "Task1_{:s}.txt"), str(labels / "{:s}.txt"), str(root / "imageset.txt")


def devkit_per_class_ap(
    gts, preds, classes, root: Path, *, iou: float = 0.5, use_07_metric: bool = True
) -> dict[str, float]:
    """Per-class AP from ``dotadevkit.evaluate.task1.voc_eval`` (AP 0 for a class without predictions)."""
    from dotadevkit.evaluate.task1 import voc_eval

    detpath, annopath, imageset = write_devkit_inputs(gts, preds, classes, root)
    out = {}
    for c in classes:
        if not (root / f"Task1_{c}.txt").read_text():
            out[c] = 0.0  # the devkit raises IndexError on an empty detection file
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 recall of classes without GT
            with contextlib.redirect_stdout(io.StringIO()):  # the devkit prints debug arrays
                _, _, ap = voc_eval(detpath, annopath, imageset, c, ovthresh=iou, use_07_metric=use_07_metric)
        out[c] = float(ap)
    return out
