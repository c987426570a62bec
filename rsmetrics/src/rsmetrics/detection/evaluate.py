"""Detection evaluation: matching, tie rules, AP and F1, functional and stateful.

How a number is made, in order:

1. Every prediction and GT object is assigned to its (image, class) group;
   labels outside the class list are counted and left out.
2. IoU is computed once per (prediction, GT) pair of a group, for all
   thresholds (never per threshold), after a horizontal-box prefilter.
3. Predictions of a class are ranked by descending score. Equal scores are a
   *tie*, and the tie rule orders them:

   ``grouped`` (default)
       Tied predictions form one group. Inside it, matching takes them in
       descending order of their best IoU with any GT of the same image and
       class (computed before matching), then input order. The group adds ONE
       point, its cumulative TP and FP, to the precision-recall curve, as
       scikit-learn treats tied scores. A model without scores (a VLM) is one
       group per class, so ``AP(area) = P * R`` and
       ``AP(voc07) = P * #{t in 0, 0.1, ..., 1 : t <= R} / 11``: numbers that do
       not depend on the order of the output.
   ``stable``
       Input order (image order, then the order inside each image); one point
       per prediction. pycocotools' rule.
   ``random``
       A seeded shuffle inside each tie, one point per prediction; AP is the
       mean over the seeds and ``map_std`` the population std (the paper's
       robustness protocol with random scores).

4. Matching follows the protocol (``voc`` or ``coco``), AP is integrated by its
   ``ap_method``, and classes are averaged by ``class_average``.

Example:
    >>> import numpy as np
    >>> from rsmetrics.detection.types import ImageAnnotations, ImageDetections
    >>> gt = [ImageAnnotations("a", [[0, 0, 10, 10], [20, 20, 30, 30]], ["car", "car"], box_kind="hbb")]
    >>> pred = [ImageDetections("a", [[0, 0, 10, 10], [50, 50, 60, 60]], ["car", "car"], box_kind="hbb")]
    >>> result = evaluate_detection(pred, gt, ["car"], preset="mmrotate", ap_method="area")
    >>> round(result.map, 4)  # no scores: one operating point, P = 0.5, R = 0.5
    0.25
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rsmetrics.detection.ap import average_precision
from rsmetrics.detection.protocol import DetectionProtocol, get_protocol
from rsmetrics.detection.result import ClassResult, DetectionResult
from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError
from rsmetrics.geometry import is_self_intersecting, obb_to_quad, quad_area, quad_to_hbb, quad_to_obb
from rsmetrics.iou import _pair_iou, _QuadSet, hbb_iou_pairs

__all__ = ["DetectionEvaluator", "evaluate_detection"]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass
class _Flat:
    """All objects of one side (GT or predictions) as parallel arrays."""

    image: IntArray
    cls: IntArray
    quads: FloatArray
    difficult: IntArray  # GT only
    scores: FloatArray  # predictions only
    has_scores: bool


def _as_list(items: Any, kind: type) -> list[Any]:
    if items is None:
        return []
    if isinstance(items, kind):
        return [items]
    out = list(items)
    for x in out:
        if not isinstance(x, kind):
            raise InvalidInputError(f"Expected {kind.__name__} objects, but got {type(x).__name__}")
    return out


def _pairs(p_key: IntArray, g_key: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """All (prediction, GT) index pairs that share a key.

    Pairs come grouped by prediction, and inside a prediction in GT input order.
    Also returns the number of pairs of each prediction.
    """
    g_order = np.argsort(g_key, kind="stable")
    gk = g_key[g_order]
    start = np.searchsorted(gk, p_key, side="left")
    count = np.searchsorted(gk, p_key, side="right") - start
    total = int(count.sum())
    pi = np.repeat(np.arange(len(p_key)), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    gi = g_order[np.repeat(start, count) + offset]
    return pi, gi, count


def _rectangles(quads: FloatArray) -> FloatArray:
    return obb_to_quad(quad_to_obb(quads)) if len(quads) else quads


class DetectionEvaluator:
    """Stateful detection evaluation: ``update`` per image, ``compute`` once.

    Mergeable across processes: evaluate shards in workers, then
    ``main.merge(worker)`` (or pickle the evaluator; its state is plain arrays).

    Args:
        classes: the class list, in the order results are reported.
        preset: ``"dota"``, ``"mmrotate"``, ``"coco"`` or a :class:`DetectionProtocol`.
        **overrides: protocol fields to override (``iou_thresholds="0.50:0.95"``,
            ``ap_method="area"``, ``tie_rule="random"``...).

    Example:
        >>> ev = DetectionEvaluator(["car"], preset="dota")
        >>> _ = ev.update(ImageAnnotations("a", [[0, 0, 10, 10]], ["car"], box_kind="hbb"),
        ...               ImageDetections("a", [[0, 0, 10, 10]], ["car"], box_kind="hbb"))
        >>> ev.compute().map
        1.0
    """

    def __init__(self, classes: Sequence[str], preset: str | DetectionProtocol = "mmrotate", **overrides: Any) -> None:
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        if not self.classes:
            raise InvalidInputError("Expected a non-empty class list, but got none")
        if len(set(self.classes)) != len(self.classes):
            dup = [c for c, n in Counter(self.classes).items() if n > 1]
            raise InvalidInputError(f"Expected unique class names, but got duplicates {dup}")
        self.protocol = get_protocol(preset, **overrides)
        self.reset()

    def reset(self) -> DetectionEvaluator:
        """Forget every update."""
        self._gts: list[ImageAnnotations] = []
        self._preds: list[ImageDetections] = []
        return self

    def update(
        self,
        ground_truth: ImageAnnotations | Iterable[ImageAnnotations] | None = None,
        predictions: ImageDetections | Iterable[ImageDetections] | None = None,
    ) -> DetectionEvaluator:
        """Add the ground truth and/or predictions of one or more images."""
        self._gts.extend(_as_list(ground_truth, ImageAnnotations))
        self._preds.extend(_as_list(predictions, ImageDetections))
        return self

    def merge(self, other: DetectionEvaluator) -> DetectionEvaluator:
        """Add the state of another evaluator with the same classes and protocol."""
        if other.classes != self.classes or other.protocol != self.protocol:
            raise InvalidInputError("Expected an evaluator with the same classes and protocol to merge")
        self._gts.extend(other._gts)
        self._preds.extend(other._preds)
        return self

    # ------------------------------------------------------------------ compute
    def compute(self) -> DetectionResult:
        """Evaluate everything added so far."""
        return _score(self._prepare(), self.protocol)

    def _prepare(self) -> _Prepared:
        counts: Counter[str] = Counter()
        unknown: Counter[str] = Counter()
        image_index: dict[str, int] = {}
        for gt in self._gts:
            if gt.image_id in image_index:
                raise InvalidInputError(f"Ground truth of image {gt.image_id!r} was given twice")
            image_index[gt.image_id] = len(image_index)
        num_gt_images = len(image_index)
        for pr in self._preds:
            if pr.image_id not in image_index:
                image_index[pr.image_id] = len(image_index)
                counts["images_without_ground_truth"] += 1
        gt = self._flatten_gt(image_index, unknown, counts)
        pred = self._flatten_predictions(image_index, unknown, counts)
        counts["images"] = len(image_index)
        counts["images_with_ground_truth"] = num_gt_images
        return _prepare(gt, pred, self.classes, self.protocol, counts, unknown)

    def _class_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def _flatten_gt(self, image_index: dict[str, int], unknown: Counter[str], counts: Counter[str]) -> _Flat:
        cls_index = self._class_index()
        images, classes, quads, flags = [], [], [], []
        for g in self._gts:
            if not len(g):
                continue
            ci = np.array([cls_index.get(lbl, -1) for lbl in g.labels], dtype=np.int64)
            for lbl in (g.labels[i] for i in np.flatnonzero(ci < 0)):
                unknown[f"gt:{lbl}"] += 1
            images.append(np.full(len(g), image_index[g.image_id], np.int64))
            classes.append(ci)
            quads.append(g.boxes)
            flags.append(g.difficult)
        flat = _concat(images, classes, quads, flags, None)
        keep = flat.cls >= 0
        counts["unknown_gt_labels"] = int((~keep).sum())
        rule = self.protocol.difficult
        if rule == "drop":
            counts["dropped_difficult_gt"] = int((keep & (flat.difficult != 0)).sum())
            keep &= flat.difficult == 0
        elif rule == "keep":
            flat.difficult = np.zeros_like(flat.difficult)
        return _select(flat, keep)

    def _flatten_predictions(self, image_index: dict[str, int], unknown: Counter[str], counts: Counter[str]) -> _Flat:
        cls_index = self._class_index()
        with_scores = [d.scores is not None for d in self._preds if len(d)]
        if with_scores and any(with_scores) and not all(with_scores):
            raise InvalidInputError(
                "Expected either scores for every prediction or for none, but some images have scores and some do not"
            )
        has_scores = bool(with_scores) and all(with_scores)
        # predictions of one image may arrive in several updates: keep image order, then arrival order
        order = sorted(range(len(self._preds)), key=lambda k: image_index[self._preds[k].image_id])
        images, classes, quads, scores = [], [], [], []
        for k in order:
            d = self._preds[k]
            if not len(d):
                continue
            ci = np.array([cls_index.get(lbl, -1) for lbl in d.labels], dtype=np.int64)
            for lbl in (d.labels[i] for i in np.flatnonzero(ci < 0)):
                unknown[f"prediction:{lbl}"] += 1
            images.append(np.full(len(d), image_index[d.image_id], np.int64))
            classes.append(ci)
            quads.append(d.boxes)
            scores.append(d.scores if d.scores is not None else np.ones(len(d)))
        flat = _concat(images, classes, quads, None, scores)
        flat.has_scores = has_scores
        keep = flat.cls >= 0
        counts["unknown_prediction_labels"] = int((~keep).sum())
        if has_scores and not np.isfinite(flat.scores).all():
            raise InvalidInputError("Expected finite scores, but some are NaN or infinite")
        flat = _select(flat, keep)
        cap = self.protocol.max_dets_per_image
        if cap is not None and len(flat.image):
            key = flat.image * len(self.classes) + flat.cls
            order = np.lexsort((np.arange(len(key)), -flat.scores, key))
            sorted_key = key[order]
            first = np.searchsorted(sorted_key, sorted_key, side="left")
            rank_in_group = np.arange(len(order)) - first
            keep_sorted = rank_in_group < cap
            keep = np.zeros(len(key), bool)
            keep[order[keep_sorted]] = True
            counts["dropped_over_max_dets"] = int((~keep).sum())
            flat = _select(flat, keep)
        return flat


def _concat(
    images: list[Any], classes: list[Any], quads: list[Any], flags: list[Any] | None, scores: list[Any] | None
) -> _Flat:
    if not images:
        return _Flat(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 8)), np.zeros(0, np.int64), np.zeros(0), False
        )
    n = sum(len(x) for x in images)
    return _Flat(
        np.concatenate(images),
        np.concatenate(classes),
        np.concatenate(quads),
        np.concatenate(flags) if flags is not None else np.zeros(n, np.int64),
        np.concatenate(scores).astype(np.float64) if scores is not None else np.zeros(n),
        scores is not None,
    )


def _select(flat: _Flat, keep: BoolArray) -> _Flat:
    if keep.all():  # the common case: no copy
        return flat
    return _Flat(
        flat.image[keep], flat.cls[keep], flat.quads[keep], flat.difficult[keep], flat.scores[keep], flat.has_scores
    )


def _pair_ious(pred: _QuadSet, gt: _QuadSet, pi: IntArray, gi: IntArray, p: DetectionProtocol) -> FloatArray:
    if len(pi) == 0:
        return np.zeros(0)
    if p.iou_type == "hbb":
        return hbb_iou_pairs(pred.hbb[pi], gt.hbb[gi], pixel=p.pixel)
    if p.iou_type == "rbox":
        pred, gt = _QuadSet(_rectangles(pred.quads)), _QuadSet(_rectangles(gt.quads))
    return _pair_iou(pred, pi, gt, gi)


def _crowd_overlap(ious: FloatArray, pred_quads: FloatArray, gt_quads: FloatArray, p: DetectionProtocol) -> FloatArray:
    """Turn IoU into intersection over prediction area, for crowd regions."""
    if p.iou_type == "hbb":
        ph, gh = quad_to_hbb(pred_quads), quad_to_hbb(gt_quads)
        off = 1.0 if p.pixel == "plus_one" else 0.0
        area_p = (ph[:, 2] - ph[:, 0] + off) * (ph[:, 3] - ph[:, 1] + off)
        area_g = (gh[:, 2] - gh[:, 0] + off) * (gh[:, 3] - gh[:, 1] + off)
    else:
        if p.iou_type == "rbox":
            pred_quads, gt_quads = _rectangles(pred_quads), _rectangles(gt_quads)
        area_p, area_g = np.abs(quad_area(pred_quads)), np.abs(quad_area(gt_quads))
    inter = ious * (area_p + area_g) / (1.0 + ious)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(area_p > 0, inter / area_p, 0.0)
    return np.clip(np.nan_to_num(out), 0.0, 1.0)


def _passes(iou: FloatArray, threshold: float, op: str) -> BoolArray:
    return iou > threshold if op == ">" else iou >= threshold


def _match_voc(
    best_gt: IntArray, best_iou: FloatArray, target_ignored: BoolArray, thresholds: Sequence[float], op: str
) -> tuple[BoolArray, BoolArray]:
    """VOC matching of predictions already in rank order.

    A prediction is tested against its highest-IoU GT only. The first ranked
    prediction that reaches a regular GT is a TP, later ones FP; one that
    reaches an ignored GT is neither.
    """
    n = len(best_gt)
    tp = np.zeros((len(thresholds), n), bool)
    ignored = np.zeros((len(thresholds), n), bool)
    for ti, t in enumerate(thresholds):
        hit = _passes(best_iou, t, op)
        ignored[ti] = hit & target_ignored
        cand = np.flatnonzero(hit & ~target_ignored)
        _, first = np.unique(best_gt[cand], return_index=True)
        tp[ti, cand[first]] = True
    return tp, ~tp & ~ignored


def _match_coco_group(
    ious: FloatArray, gt_ignored: BoolArray, thresholds: Sequence[float], op: str
) -> tuple[BoolArray, BoolArray]:
    """pycocotools' greedy matching inside one (image, class) group.

    ``ious`` is ``(D, G)`` with predictions in rank order. Each prediction takes
    the best GT still unmatched (ignored GT can be matched repeatedly, like
    crowd regions, and only when no regular GT qualifies); on equal IoU the
    later GT wins, as in pycocotools.
    """
    order = np.argsort(gt_ignored, kind="stable")  # regular GT first
    ious = ious[:, order]
    ign = gt_ignored[order]
    d, g = ious.shape
    tp = np.zeros((len(thresholds), d), bool)
    ignored = np.zeros((len(thresholds), d), bool)
    for ti, t in enumerate(thresholds):
        taken = np.zeros(g, bool)
        bound = min(t, 1 - 1e-10) if op == ">=" else t
        for di in range(d):
            best, m = bound, -1  # best is only read once a GT is taken
            for gj in range(g):
                if taken[gj] and not ign[gj]:
                    continue
                if m > -1 and not ign[m] and ign[gj]:
                    break
                v = ious[di, gj]
                if m == -1:
                    if not (v > bound if op == ">" else v >= bound):
                        continue
                elif v < best:
                    continue
                best, m = v, gj
            if m == -1:
                continue
            taken[m] = True
            if ign[m]:
                ignored[ti, di] = True
            else:
                tp[ti, di] = True
    return tp, ~tp & ~ignored


@dataclass
class _Prepared:
    """Everything that does not depend on the ranking: IoUs and each prediction's best GT."""

    classes: tuple[str, ...]
    pred: _Flat
    gt_ignored: BoolArray
    npos: IntArray
    p_key: IntArray
    pi: IntArray
    gi: IntArray
    ious: FloatArray
    count: IntArray
    seg_start: IntArray
    best_iou: FloatArray
    best_gt: IntArray
    target_ignored: BoolArray
    sequential_keys: IntArray
    counts: dict[str, Any]


def _prepare(
    gt: _Flat, pred: _Flat, classes: tuple[str, ...], p: DetectionProtocol, counts: Counter[str], unknown: Counter[str]
) -> _Prepared:
    num_classes = len(classes)
    counts["gt_objects"] = len(gt.image)
    counts["predictions"] = len(pred.image)
    # canonical quads, areas and bounds, computed once for the counts and for every IoU
    counts["repaired_self_intersecting"] = (
        int(is_self_intersecting(gt.quads).sum() + is_self_intersecting(pred.quads).sum())
        if len(gt.image) + len(pred.image)
        else 0
    )
    pred_set, gt_set = _QuadSet(pred.quads), _QuadSet(gt.quads)
    # from here on only the canonical copies are needed: let the flattened input go
    pred.quads, gt.quads = pred_set.quads, gt_set.quads
    counts["degenerate_gt"] = int(gt_set.bad.sum())
    counts["degenerate_predictions"] = int(pred_set.bad.sum())

    gt_ignored = gt.difficult != 0 if p.difficult == "ignore" else np.zeros(len(gt.image), bool)
    p_key = pred.image * num_classes + pred.cls
    g_key = gt.image * num_classes + gt.cls
    pi, gi, count = _pairs(p_key, g_key)
    ious = _pair_ious(pred_set, gt_set, pi, gi, p)
    if p.crowd_iou and p.difficult == "ignore" and len(ious):
        crowd = gt_ignored[gi]
        if crowd.any():
            ious[crowd] = _crowd_overlap(ious[crowd], pred.quads[pi[crowd]], gt.quads[gi[crowd]], p)

    # best GT of every prediction: highest IoU, first GT in input order on ties
    n = len(p_key)
    best_iou = np.full(n, -np.inf)
    best_gt = np.full(n, -1, np.int64)
    has = count > 0
    seg_start = np.cumsum(count) - count
    if has.any():
        starts = seg_start[has]
        best_iou[has] = np.maximum.reduceat(ious, starts)
        is_max = ious == np.repeat(best_iou, count)
        first = np.minimum.reduceat(np.where(is_max, np.arange(len(ious)), len(ious)), starts)
        best_gt[has] = gi[first]
    target_ignored = np.zeros(n, bool)
    target_ignored[has] = gt_ignored[best_gt[has]]

    # groups needing pycocotools' sequential fallback: some prediction with two candidate GTs
    sequential_keys: IntArray = np.zeros(0, np.int64)
    if p.matching == "coco" and len(ious):
        cand = _passes(ious, min(p.iou_thresholds), p.iou_op)
        multi = np.bincount(pi[cand], minlength=n) >= 2
        sequential_keys = np.unique(p_key[multi])
    counts["sequentially_matched_groups"] = len(sequential_keys)

    npos = np.bincount(gt.cls[~gt_ignored], minlength=num_classes) if len(gt.cls) else np.zeros(num_classes, np.int64)
    out_counts: dict[str, Any] = dict(counts)
    out_counts["unknown_labels"] = dict(unknown)
    return _Prepared(
        classes,
        pred,
        gt_ignored,
        npos,
        p_key,
        pi,
        gi,
        ious,
        count,
        seg_start,
        best_iou,
        best_gt,
        target_ignored,
        sequential_keys,
        out_counts,
    )


def _score(
    prep: _Prepared, p: DetectionProtocol, keep: BoolArray | None = None, scores: FloatArray | None = None
) -> DetectionResult:
    """Rank, match and integrate, optionally on a subset of predictions with replaced scores.

    ``p`` may differ from the protocol of :func:`_prepare` in the ranking and
    averaging fields only (tie rule, seeds, AP method, class averaging).
    """
    classes = prep.classes
    num_classes = len(classes)
    thresholds = p.iou_thresholds
    idx = np.arange(len(prep.p_key)) if keep is None else np.flatnonzero(keep)
    n = len(idx)
    cls = prep.pred.cls[idx]
    score = prep.pred.scores[idx] if scores is None else np.asarray(scores, np.float64)[idx]
    best_iou, best_gt, target_ignored = prep.best_iou[idx], prep.best_gt[idx], prep.target_ignored[idx]
    npos = prep.npos
    npred = np.bincount(cls, minlength=num_classes) if n else np.zeros(num_classes, np.int64)
    seeds: Sequence[int | None] = p.seeds if p.tie_rule == "random" else (None,)

    ap_runs = np.zeros((len(seeds), len(thresholds), num_classes))
    tp_count = fp_count = None
    for si, seed in enumerate(seeds):
        if p.tie_rule == "grouped":
            order = np.lexsort((np.arange(n), -best_iou, -score, cls))
        elif p.tie_rule == "stable":
            order = np.lexsort((np.arange(n), -score, cls))
        else:
            shuffle = np.random.default_rng(seed).permutation(n)
            order = np.lexsort((shuffle, -score, cls))
        tp, fp = _match_voc(best_gt[order], best_iou[order], target_ignored[order], thresholds, p.iou_op)
        if len(prep.sequential_keys):
            _rematch_sequential(tp, fp, idx[order], prep, thresholds, p.iou_op)
        ranked_cls = cls[order]
        ranked_scores = score[order]
        bounds = np.searchsorted(ranked_cls, np.arange(num_classes + 1))
        if tp_count is None:  # counts of the first order; VOC counts do not depend on the order
            tp_count = _per_class_sum(tp, bounds)
            fp_count = _per_class_sum(fp, bounds)
        for c in range(num_classes):
            lo, hi = bounds[c], bounds[c + 1]
            for ti in range(len(thresholds)):
                ap_runs[si, ti, c] = _class_ap(tp[ti, lo:hi], fp[ti, lo:hi], ranked_scores[lo:hi], int(npos[c]), p)

    no_gt = npos == 0
    if p.class_average == "with_gt":
        ap_runs[:, :, no_gt] = np.nan
    else:
        ap_runs[:, :, no_gt] = 0.0
    ap_mean = ap_runs.mean(axis=0)
    ap_std = ap_runs.std(axis=0) if p.tie_rule == "random" else None
    map_runs = _nanmean(ap_runs, axis=2)  # (seeds, thresholds)
    map_per_threshold = _nanmean(ap_mean, axis=1)
    overall_runs = map_runs.mean(axis=1)
    tpc = np.asarray(tp_count, dtype=np.int64)
    fpc = np.asarray(fp_count, dtype=np.int64)
    fnc = npos[None, :] - tpc
    per_class = tuple(
        ClassResult(
            name=classes[c],
            num_gt=int(npos[c]),
            num_predictions=int(npred[c]),
            ap=tuple(float(v) for v in ap_mean[:, c]),
            tp=tuple(int(v) for v in tpc[:, c]),
            fp=tuple(int(v) for v in fpc[:, c]),
            fn=tuple(int(v) for v in fnc[:, c]),
            ap_std=None if ap_std is None else tuple(float(v) for v in ap_std[:, c]),
        )
        for c in range(num_classes)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tpc[0] / (2 * tpc[0] + fpc[0] + fnc[0])
    mf1 = float(np.mean(f1[~no_gt])) if (~no_gt).any() else float("nan")
    denom = 2 * tpc[0].sum() + fpc[0].sum() + fnc[0].sum()
    micro_f1 = float(2 * tpc[0].sum() / denom) if denom else float("nan")
    out_counts = dict(prep.counts)
    if keep is not None:
        out_counts["predictions"] = n
    return DetectionResult(
        protocol=p.to_dict(),
        iou_thresholds=thresholds,
        classes=per_class,
        map_per_threshold=tuple(float(v) for v in map_per_threshold),
        map=float(overall_runs.mean()),
        map_std=float(overall_runs.std()) if p.tie_rule == "random" else None,
        mf1=mf1,
        micro_f1=micro_f1,
        counts=out_counts,
    )


def _per_class_sum(flags: BoolArray, bounds: IntArray) -> IntArray:
    # a slice sum per class: a cumulative sum over all predictions would cost 8 bytes each per threshold
    return np.stack([flags[:, lo:hi].sum(axis=1, dtype=np.int64) for lo, hi in pairwise(bounds)], axis=1).reshape(
        flags.shape[0], len(bounds) - 1
    )


def _nanmean(a: FloatArray, axis: int) -> FloatArray:
    valid = ~np.isnan(a)
    total = np.where(valid, a, 0.0).sum(axis=axis)
    num = valid.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num > 0, total / np.maximum(num, 1), np.nan)


def _class_ap(tp: BoolArray, fp: BoolArray, scores: FloatArray, npos: int, p: DetectionProtocol) -> float:
    if npos == 0 or len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp, dtype=np.float64)
    cfp = np.cumsum(fp, dtype=np.float64)
    if p.tie_rule == "grouped":
        # one point per group of equal scores: its last member carries the cumulative counts
        ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
        ctp, cfp = ctp[ends], cfp[ends]
    recall = ctp / npos
    if p.ap_method == "coco101":
        precision = ctp / (ctp + cfp + np.spacing(1))
    else:
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return average_precision(recall, precision, p.ap_method)


def _rematch_sequential(
    tp: BoolArray, fp: BoolArray, ranked: IntArray, prep: _Prepared, thresholds: Sequence[float], op: str
) -> None:
    """Redo matching of the groups that need pycocotools' fallback rule.

    ``ranked`` holds the prediction indices (into the prepared arrays) in rank order.
    """
    ranked_key = prep.p_key[ranked]
    positions = np.flatnonzero(np.isin(ranked_key, prep.sequential_keys))
    # positions of each group's predictions, in rank order
    grouped = positions[np.argsort(ranked_key[positions], kind="stable")]
    splits = np.flatnonzero(np.diff(ranked_key[grouped])) + 1
    for members in np.split(grouped, splits):
        dets = ranked[members]
        first = dets[0]
        g_ids = prep.gi[prep.seg_start[first] : prep.seg_start[first] + prep.count[first]]
        mat = np.stack([prep.ious[prep.seg_start[d] : prep.seg_start[d] + prep.count[d]] for d in dets])
        gtp, gfp = _match_coco_group(mat, prep.gt_ignored[g_ids], thresholds, op)
        tp[:, members] = gtp
        fp[:, members] = gfp


def evaluate_detection(
    predictions: Iterable[ImageDetections],
    ground_truths: Iterable[ImageAnnotations],
    classes: Sequence[str],
    preset: str | DetectionProtocol = "mmrotate",
    **overrides: Any,
) -> DetectionResult:
    """Evaluate detections against ground truth in one call.

    Args:
        predictions: per-image predictions (any number of images; an image may
            appear in several items, whose predictions are concatenated).
        ground_truths: per-image ground truth; every image of the test set must
            be here, also those without objects.
        classes: the class list.
        preset: ``"dota"``, ``"mmrotate"`` (default: RSCoVLM's AP_nc) or ``"coco"``,
            or a :class:`~rsmetrics.detection.protocol.DetectionProtocol`.
        **overrides: protocol fields to change, e.g. ``iou_thresholds="0.50:0.95"``.

    Returns:
        A :class:`~rsmetrics.detection.result.DetectionResult`.
    """
    return DetectionEvaluator(classes, preset, **overrides).update(ground_truths, predictions).compute()
