"""Run pycocotools' bbox evaluation on in-memory data (horizontal boxes of the quads)."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from rsmetrics.geometry import quad_to_hbb


def to_coco(gts, preds, classes):
    images, anns, dets = [], [], []
    cat = {c: i + 1 for i, c in enumerate(classes)}
    for img_id, g in enumerate(gts, start=1):
        images.append({"id": img_id, "file_name": g.image_id + ".png", "width": 512, "height": 512})
        for hbb, name, flag in zip(quad_to_hbb(g.boxes), g.labels, g.difficult):
            x1, y1, x2, y2 = (float(v) for v in hbb)
            anns.append({
                "id": len(anns) + 1, "image_id": img_id, "category_id": cat[name],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(flag != 0),
            })  # fmt: skip
    index = {g.image_id: i for i, g in enumerate(gts, start=1)}
    for d in preds:
        scores = d.scores if d.scores is not None else np.ones(len(d))
        for hbb, name, s in zip(quad_to_hbb(d.boxes), d.labels, scores):
            x1, y1, x2, y2 = (float(v) for v in hbb)
            dets.append(
                {
                    "image_id": index[d.image_id],
                    "category_id": cat[name],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(s),
                }
            )
    gt_json = {"images": images, "annotations": anns, "categories": [{"id": i, "name": c} for c, i in cat.items()]}
    return gt_json, dets


def cocoeval_stats(gts, preds, classes, backend: str = "pycocotools"):
    """Return (AP50:95, AP50, AP75, per-class AP50:95) from COCOeval (maxDets 100, area 'all')."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    gt_json, dets = to_coco(gts, preds, classes)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        res = coco.loadRes(dets) if dets else COCO()
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    per_class = []
    for k in range(precision.shape[2]):
        p = precision[:, :, k, 0, -1]
        per_class.append(float(np.mean(p[p > -1])) if (p > -1).any() else float("nan"))
    return float(ev.stats[0]), float(ev.stats[1]), float(ev.stats[2]), per_class
