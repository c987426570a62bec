"""The main job on embedded data: generate a synthetic evaluation set and score it.

Run with ``python -m rsmetrics.demo --output outputs/demo``. Everything is
generated from seeds (nothing is downloaded):

* detection: DOTA-like patches; a VLM's answers written as RSCoVLM plain-text
  responses in its resized input frame, parsed back and scored as AP_nc and
  mF1 (``mmrotate`` and ``dota`` presets); a conventional detector with scores
  run through the paper's fair comparison (threshold sweep on val, test);
* grounding: referring-expression answers scored as Acc@0.5;
* VQA: RSVQA-style answers scored per question type.

Tables go to stdout; JSON files and the AP_nc-vs-threshold plot go to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rsmetrics.detection.evaluate import evaluate_detection
from rsmetrics.detection.fair_compare import fair_compare
from rsmetrics.detection.vlm import detections_from_responses
from rsmetrics.io._common import atomic_write_json
from rsmetrics.synthetic import DOTA_LIKE_CLASSES, make_detection_workload, make_grounding_set, make_vqa_set

__all__ = ["main", "vlm_responses"]

INPUT_SIZE = 504  # a 512 px patch after Qwen2.5-VL's smart resize (multiples of 28)


def vlm_responses(predictions: list[Any], image_size: int = 512, input_size: int = INPUT_SIZE) -> list[dict[str, Any]]:
    """Write predictions as a VLM would answer: integer quads in its input frame, one per line."""
    scale = input_size / image_size
    records = []
    for det in predictions:
        lines = []
        order = np.lexsort((det.boxes[:, 0], det.boxes[:, 1], [lbl.replace("-", " ") for lbl in det.labels]))
        for k in order:
            coords = ",".join(str(round(v * scale)) for v in det.boxes[k])
            lines.append(f"{coords} {det.labels[k].replace('-', ' ')}")
        text = "\n".join(lines) if lines else "There are none."
        records.append({
            "image_id": det.image_id, "response": text, "image_width": image_size, "image_height": image_size,
            "input_width": input_size, "input_height": input_size,
        })  # fmt: skip
    return records


def _section(title: str) -> None:
    print(f"\n=== {title} ===")


def _write(out: Path, name: str, payload: Any) -> None:
    atomic_write_json(out / name, payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsmetrics.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/demo", help="folder for JSON results and plots")
    parser.add_argument("--images", type=int, default=800, help="detection patches per split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary: dict[str, Any] = {}

    _section("Detection: a VLM without confidence scores (RSCoVLM plain-text answers)")
    gts, preds = make_detection_workload(args.images, seed=args.seed, with_scores=False)
    records = vlm_responses(preds)
    parsed, report = detections_from_responses(records, DOTA_LIKE_CLASSES, dialect="rscovlm_plain")
    print(f"parsed {report.responses} responses: {report.boxes} boxes, {report.empty_answers} 'There are none.', "
          f"{report.unparsed_candidates} unparsable lines, unknown labels {report.unknown_labels}")  # fmt: skip
    ap_nc = evaluate_detection(parsed, gts, DOTA_LIKE_CLASSES, "mmrotate")
    print(ap_nc.to_table())
    devkit_style = evaluate_detection(parsed, gts, DOTA_LIKE_CLASSES, "dota", iou_thresholds="0.50:0.95")
    print(f"dota preset (polygon IoU, difficult ignored): AP_nc50 {devkit_style.ap50:.4f}, "
          f"AP_nc75 {devkit_style.ap75:.4f}, AP_nc50:95 {devkit_style.ap50_95:.4f}")  # fmt: skip
    _write(out, "detection_vlm_mmrotate.json", ap_nc.to_dict())
    _write(out, "detection_vlm_dota.json", devkit_style.to_dict())
    summary["vlm_ap_nc50"] = ap_nc.map
    summary["vlm_mf1"] = ap_nc.mf1

    _section("Detection: fair comparison of a conventional detector (paper Sec. IV-D)")
    val_gt, val_pred = make_detection_workload(args.images, seed=args.seed + 1)
    test_gt, test_pred = make_detection_workload(args.images, seed=args.seed + 2)
    fair = fair_compare(val_pred, val_gt, DOTA_LIKE_CLASSES, test_pred, test_gt)
    print(fair.to_table())
    _write(out, "fair_compare.json", fair.to_dict())
    try:
        fair.plot(out / "ap_nc_vs_threshold.png")
        print(f"plot: {out / 'ap_nc_vs_threshold.png'}")
    except Exception as err:  # matplotlib is an optional extra
        print(f"(no plot: {err})")
    assert fair.test is not None
    summary["detector_best_threshold"] = fair.best_threshold
    summary["detector_test_ap_nc50"] = fair.test.ap_nc

    _section("Grounding: Acc@0.5 of referring-expression answers")
    try:
        from rsmetrics.grounding import score_grounding_answers
        from rsmetrics.parsers import Frame

        samples = make_grounding_set(300, seed=args.seed)
        grounding = score_grounding_answers(
            [s.answer for s in samples], [s.gt_hbb for s in samples], dialect="rscovlm_plain",
            frames=[Frame.pixels(*s.input_size) for s in samples], image_sizes=[s.image_size for s in samples],
            datasets=[s.dataset for s in samples], preset="rscovlm",
        )  # fmt: skip
        print(grounding.to_table() if hasattr(grounding, "to_table") else json.dumps(grounding.to_dict(), indent=2))
        _write(out, "grounding.json", grounding.to_dict())
        summary["grounding_acc50"] = grounding.to_dict().get("accuracy")
    except ImportError as err:
        print(f"(grounding not available: {err})")

    _section("VQA: RSVQA-style answers per question type")
    from rsmetrics.text import vqa_accuracy

    vqa = make_vqa_set(400, seed=args.seed)
    for matcher in ("exact", "yes_no"):
        res = vqa_accuracy([q.prediction for q in vqa], [q.ground_truth for q in vqa], matcher=matcher,
                           question_types=[q.question_type for q in vqa])  # fmt: skip
        d = res.to_dict()
        print(f"matcher={matcher:<8} OA {d['overall_accuracy']:.4f}  AA {d['average_accuracy']:.4f}  "
              + "  ".join(f"{k}: {v['accuracy']:.3f}" for k, v in d["per_type"].items()))  # fmt: skip
        _write(out, f"vqa_{matcher}.json", d)
        summary[f"vqa_oa_{matcher}"] = d["overall_accuracy"]

    _write(out, "summary.json", summary)
    print(f"\nwrote results to {out}/ in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
