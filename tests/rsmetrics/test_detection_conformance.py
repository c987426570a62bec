"""Our presets against the reference evaluators, run beside ours on the same data.

`dotadevkit` (PyPI repackaging of the DOTA devkit's Task1 evaluation) for the
`dota` preset and pycocotools / faster-coco-eval for COCO-style hbb AP. They are
test-only dependencies; the tests skip where one is missing.
"""

from __future__ import annotations

import pytest

from rsmetrics.detection.evaluate import evaluate_detection
from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.synthetic import DOTA_LIKE_CLASSES, make_detection_workload

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def workload():
    # 1,500 patches, ~8,000 objects and ~11,000 predictions: DOTA-like, quads with corner
    # noise (some non-convex), difficult (1) and truncated (2) flags, distinct scores
    return make_detection_workload(1500, seed=11)


@pytest.mark.parametrize(("iou", "use_07"), [(0.5, True), (0.75, True), (0.5, False), (0.9, False)])
def test_dota_preset_equals_the_devkit(workload, tmp_path, iou, use_07):
    pytest.importorskip("dotadevkit")
    from reference.devkit import devkit_per_class_ap

    gts, preds = workload
    ref = devkit_per_class_ap(gts, preds, DOTA_LIKE_CLASSES, tmp_path, iou=iou, use_07_metric=use_07)
    ours = evaluate_detection(
        preds, gts, DOTA_LIKE_CLASSES, "dota", iou_thresholds=iou, ap_method="voc07" if use_07 else "area"
    )
    for name in DOTA_LIKE_CLASSES:
        assert ours.per_class_ap()[name] == pytest.approx(ref[name], abs=1e-9), name
    assert ours.map == pytest.approx(sum(ref.values()) / len(ref), abs=1e-9)


def test_dota_preset_equals_the_devkit_on_edge_cases(tmp_path):
    pytest.importorskip("dotadevkit")
    from reference.devkit import devkit_per_class_ap

    classes = ("plane", "ship", "harbor")
    gts = [
        # difficult and truncated GT, a non-convex quad, touching boxes
        ImageAnnotations("e1", [[0, 0, 10, 0, 10, 10, 0, 10], [20, 0, 30, 0, 30, 10, 20, 10], [40, 0, 50, 0, 44, 4, 40, 10]],
                         ["plane", "plane", "ship"], difficult=[0, 1, 2]),
        ImageAnnotations("e2", [], []),  # an image without objects
        ImageAnnotations("e3", [[0, 0, 10, 0, 10, 10, 0, 10], [0, 0, 10, 0, 10, 10, 0, 10]], ["plane", "plane"]),  # duplicate GT
    ]  # fmt: skip
    preds = [
        ImageDetections("e1", [[0, 0, 10, 0, 10, 10, 0, 10], [1, 0, 11, 0, 11, 10, 1, 10], [20, 0, 30, 0, 30, 10, 20, 10],
                               [10, 0, 20, 0, 20, 10, 10, 10], [40, 0, 50, 0, 44, 4, 40, 10]],
                        ["plane", "plane", "plane", "plane", "ship"], scores=[0.9, 0.85, 0.8, 0.7, 0.6]),
        ImageDetections("e2", [[0, 0, 5, 0, 5, 5, 0, 5]], ["harbor"], scores=[0.95]),
        ImageDetections("e3", [[0, 0, 10, 0, 10, 10, 0, 10]] * 3, ["plane"] * 3, scores=[0.5, 0.4, 0.3]),
    ]  # fmt: skip
    for iou, use_07 in [(0.5, True), (0.5, False), (0.7, True)]:
        ref = devkit_per_class_ap(gts, preds, classes, tmp_path / f"{iou}{use_07}", iou=iou, use_07_metric=use_07)
        ours = evaluate_detection(
            preds, gts, classes, "dota", iou_thresholds=iou, ap_method="voc07" if use_07 else "area"
        )
        for name, result in zip(classes, ours.classes):
            if result.num_gt == 0 and not use_07:
                continue  # no counted GT: the devkit's area AP is NaN (0/0 recall); we report 0 and say so
            assert ours.per_class_ap()[name] == pytest.approx(ref[name], abs=1e-12), (name, iou, use_07)


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_coco_preset_equals_cocoeval(workload, backend):
    pytest.importorskip(backend)
    from reference.cocotools import cocoeval_stats

    gts, preds = workload
    ap, ap50, ap75, per_class = cocoeval_stats(gts, preds, DOTA_LIKE_CLASSES, backend=backend)
    ours = evaluate_detection(preds, gts, DOTA_LIKE_CLASSES, "coco")
    assert ours.ap50_95 == pytest.approx(ap, abs=1e-12)
    assert ours.ap50 == pytest.approx(ap50, abs=1e-12)
    assert ours.ap75 == pytest.approx(ap75, abs=1e-12)
    for mine, ref in zip(ours.classes, per_class):
        assert sum(mine.ap) / len(mine.ap) == pytest.approx(ref, abs=1e-12), mine.name
