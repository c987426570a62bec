"""The ``rsmetrics`` command line: each subcommand reads files, calls the API, prints a table.

    rsmetrics detection --gt labelTxt/ --pred task1/ --preset dota
    rsmetrics detection --gt labelTxt/ --pred outputs.jsonl --pred-format vlm-jsonl --json result.json
    rsmetrics grounding --jsonl answers.jsonl --preset rscovlm
    rsmetrics vqa --jsonl answers.jsonl --matcher exact
    rsmetrics vqa --jsonl lrsvqa_answers.jsonl --lrsvqa
    rsmetrics classification --jsonl answers.jsonl --classes classes.txt
    rsmetrics fair-compare --val-gt val/labelTxt --val-pred val_task1/ --test-gt ... --test-pred ... --plot fig5.png
    rsmetrics merge --pred patch_task1/ --out merged_task1/

Every subcommand exits 0 on success, 2 on bad input (the message names the
file and line), and writes ``--json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmetrics.errors import RSMetricsError

__all__ = ["main"]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Stage:
    """Prints what is being done and how long it took, to stderr."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> _Stage:
        self.start = time.perf_counter()
        _log(f"… {self.what}")
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            _log(f"✓ {self.what} ({time.perf_counter() - self.start:.2f} s)")


def _progress(items: Sequence[Any], label: str) -> Any:
    """Yield items while drawing a progress bar on stderr (only on a terminal)."""
    total = len(items)
    tty = sys.stderr.isatty()
    for i, item in enumerate(items, start=1):
        yield item
        if tty:
            filled = int(30 * i / max(total, 1))
            sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {i}/{total}")
            sys.stderr.flush()
    if tty:
        sys.stderr.write("\n")


def _write_json(path: str | None, payload: Any) -> None:
    if not path:
        return
    from rsmetrics.io._common import atomic_write_json

    atomic_write_json(path, payload)
    _log(f"wrote {path}")


def _classes(spec: str | None, fallback: Sequence[str] | None = None) -> list[str]:
    from rsmetrics.io.dota import dota_classes, read_class_names

    if spec is None:
        if fallback:
            return list(fallback)
        return list(dota_classes("1.0"))
    if spec.lower() in ("dota", "dota1.0", "dota1", "dota-v1.0"):
        return list(dota_classes("1.0"))
    if spec.lower() in ("dota1.5", "dota-v1.5"):
        return list(dota_classes("1.5"))
    if spec.lower() in ("dota2.0", "dota2", "dota-v2.0"):
        return list(dota_classes("2.0"))
    if Path(spec).is_file():
        return list(read_class_names(spec))
    return [c.strip() for c in spec.split(",") if c.strip()]


def _frame(spec: str | None) -> Any:
    from rsmetrics.parsers import Frame

    if spec is None or spec == "pixels":
        return None  # read from each record's input_width/input_height
    kind, _, size = spec.partition(":")
    if kind not in ("grid", "bins") or not size:
        raise RSMetricsError(f"Expected --frame to be 'pixels', 'grid:N' or 'bins:N', but got {spec!r}")
    return Frame.grid(float(size)) if kind == "grid" else Frame.bins(float(size))


def _read_gt(path: str, fmt: str, strict: bool) -> tuple[list[Any], list[str] | None]:
    from rsmetrics.io.coco import read_coco_ground_truth
    from rsmetrics.io.dota import read_dota_label_dir, read_dota_labels

    with _Stage(f"reading ground truth {path}"):
        if fmt == "auto":
            fmt = "coco" if path.endswith(".json") else "dota"
        if fmt == "coco":
            gts, classes, report = read_coco_ground_truth(path, strict=strict)
        elif Path(path).is_dir():
            gts, report = read_dota_label_dir(path, strict=strict)
            classes = None
        else:
            gts, report, classes = [read_dota_labels(path, strict=strict)], None, None
    if report is not None:
        _report_reading("ground truth", report)
    return gts, classes


def _report_reading(what: str, report: Any) -> None:
    data = report.to_dict() if hasattr(report, "to_dict") else dict(report.__dict__)
    skipped = data.get("skipped") or data.get("skipped_lines") or {}
    summary = ", ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, int))
    _log(f"  {what}: {summary}")
    if skipped:
        _log(f"  skipped: {skipped}")


def _read_pred(args: argparse.Namespace, path: str, fmt: str, classes: list[str], strict: bool) -> list[Any]:
    from rsmetrics.detection.vlm import detections_from_responses
    from rsmetrics.io.coco import read_coco_results
    from rsmetrics.io.dota import read_task1_dir
    from rsmetrics.io.jsonl import load_jsonl

    with _Stage(f"reading predictions {path}"):
        if fmt == "auto":
            fmt = "vlm-jsonl" if path.endswith(".jsonl") else ("coco" if path.endswith(".json") else "task1")
        if fmt == "task1":
            preds, report = read_task1_dir(path, classes, strict=strict)
            _report_reading("predictions", report)
            return preds
        if fmt == "coco":
            if not args.gt.endswith(".json"):
                raise RSMetricsError("COCO results need COCO ground truth (--gt file.json) to map image ids")
            return read_coco_results(path, args.gt, strict=strict)
        records, report = load_jsonl(path, strict=strict)
        _report_reading("records", report)
        preds, parse_report = detections_from_responses(
            _progress(records, "parsing"), classes, dialect=args.dialect, frame=_frame(args.frame)
        )
        _log(f"  parsing: {json.dumps(parse_report.to_dict(), default=str)}")
        return preds


def _detection_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("iou_type", "iou_op", "difficult", "matching", "ap_method", "class_average", "tie_rule", "pixel"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    if args.iou is not None:
        out["iou_thresholds"] = args.iou
    if getattr(args, "seeds", None):
        out["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    return out


def _cmd_detection(args: argparse.Namespace) -> int:
    from rsmetrics.detection.evaluate import evaluate_detection

    gts, gt_classes = _read_gt(args.gt, args.gt_format, not args.lenient)
    classes = _classes(args.classes, gt_classes)
    preds = _read_pred(args, args.pred, args.pred_format, classes, not args.lenient)
    with _Stage(f"evaluating ({args.preset})"):
        result = evaluate_detection(preds, gts, classes, args.preset, **_detection_overrides(args))
    print(result.to_table())
    _write_json(args.json, result.to_dict())
    return 0


def _cmd_fair_compare(args: argparse.Namespace) -> int:
    from rsmetrics.detection.fair_compare import fair_compare

    val_gt, gt_classes = _read_gt(args.val_gt, args.gt_format, not args.lenient)
    classes = _classes(args.classes, gt_classes)
    args.gt = args.val_gt
    val_pred = _read_pred(args, args.val_pred, args.pred_format, classes, not args.lenient)
    test_gt = test_pred = None
    if args.test_pred:
        test_gt, _ = _read_gt(args.test_gt, args.gt_format, not args.lenient)
        args.gt = args.test_gt
        test_pred = _read_pred(args, args.test_pred, args.pred_format, classes, not args.lenient)
    with _Stage("sweeping confidence thresholds"):
        result = fair_compare(
            val_pred, val_gt, classes, test_pred, test_gt, preset=args.preset, **_detection_overrides(args)
        )
    print(result.to_table())
    if args.plot:
        result.plot(args.plot)
        _log(f"wrote {args.plot}")
    _write_json(args.json, result.to_dict())
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from rsmetrics.io.dota import read_task1_dir, write_task1
    from rsmetrics.merge import merge_patch_detections

    classes = _classes(args.classes)
    preds, report = read_task1_dir(args.pred, classes, strict=not args.lenient)
    _report_reading("patch predictions", report)
    with _Stage(f"merging {len(preds)} patches (polygon NMS at IoU {args.nms_iou})"):
        merged = merge_patch_detections(preds, iou_threshold=args.nms_iou)
    write_task1(merged, args.out, classes)
    total_in = sum(len(p) for p in preds)
    total_out = sum(len(m) for m in merged)
    print(f"patches: {len(preds)}  images: {len(merged)}  detections: {total_in} -> {total_out} after NMS")
    print(f"wrote Task1 files for {len(classes)} classes to {args.out}")
    return 0


def _records(path: str, strict: bool) -> list[dict[str, Any]]:
    from rsmetrics.io.jsonl import load_jsonl

    records, report = load_jsonl(path, strict=strict)
    _report_reading("records", report)
    return records


def _field(record: dict[str, Any], names: Sequence[str], where: str) -> Any:
    for name in names:
        if name in record:
            return record[name]
    raise RSMetricsError(f"{where}: expected one of the fields {list(names)}")


def _cmd_grounding(args: argparse.Namespace) -> int:
    from rsmetrics.grounding import score_grounding_answers
    from rsmetrics.parsers import Frame

    records = _records(args.jsonl, not args.lenient)
    fixed = _frame(args.frame)
    answers, targets, frames, sizes, datasets = [], [], [], [], []
    for k, rec in enumerate(records):
        where = f"{args.jsonl}: record {k + 1}"
        answers.append(_field(rec, ("answer", "response", "prediction"), where))
        targets.append(_field(rec, ("bbox", "gt_bbox", "target"), where))
        sizes.append((float(_field(rec, ("image_width",), where)), float(_field(rec, ("image_height",), where))))
        frames.append(
            fixed
            or Frame.pixels(float(_field(rec, ("input_width",), where)), float(_field(rec, ("input_height",), where)))
        )
        datasets.append(str(rec.get("dataset", "all")))
    kind = "quad" if any(len(t) == 8 for t in targets) else "hbb"
    result = score_grounding_answers(
        answers, targets, dialect=args.dialect, frames=frames, image_sizes=sizes, datasets=datasets,
        preset=args.preset, thresholds=tuple(float(t) for t in args.iou.split(",")), box_kind=kind,
    )  # fmt: skip
    print(result.to_table() if hasattr(result, "to_table") else _dict_table(result.to_dict()))
    _write_json(args.json, result.to_dict())
    return 0


def _dict_table(data: dict[str, Any], indent: str = "") -> str:
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(_dict_table(value, indent + "  "))
        elif isinstance(value, float):
            lines.append(f"{indent}{key:<28}{'nan' if math.isnan(value) else format(value, '.4f')}")
        elif isinstance(value, (list, tuple)) and len(value) > 12:
            lines.append(f"{indent}{key:<28}[{len(value)} items]")
        else:
            lines.append(f"{indent}{key:<28}{value}")
    return "\n".join(lines)


def _cmd_vqa(args: argparse.Namespace) -> int:
    from rsmetrics.text import lrsvqa_scores, vqa_accuracy

    records = _records(args.jsonl, not args.lenient)
    normalizers = tuple(args.normalizers.split(",")) if args.normalizers else None
    extra = {"normalizers": normalizers} if normalizers else {}
    if args.lrsvqa:
        result = lrsvqa_scores(records, matcher=args.matcher, wordnet_dir=args.wordnet_dir, **extra)
    else:
        preds = [
            _field(r, ("prediction", "answer", "response"), f"{args.jsonl}: record {k + 1}")
            for k, r in enumerate(records)
        ]
        gts = [
            _field(r, ("ground_truth", "target", "gt"), f"{args.jsonl}: record {k + 1}") for k, r in enumerate(records)
        ]
        types = [str(r.get("question_type", r.get("type", "all"))) for r in records]
        result = vqa_accuracy(preds, gts, matcher=args.matcher, question_types=types, **extra)
    print(_dict_table(result.to_dict()))
    _write_json(args.json, result.to_dict())
    return 0


def _cmd_classification(args: argparse.Namespace) -> int:
    from rsmetrics.text import classification_accuracy

    records = _records(args.jsonl, not args.lenient)
    preds = [
        _field(r, ("prediction", "answer", "response"), f"{args.jsonl}: record {k + 1}") for k, r in enumerate(records)
    ]
    targets = [
        _field(r, ("target", "ground_truth", "label"), f"{args.jsonl}: record {k + 1}") for k, r in enumerate(records)
    ]
    classes = _classes(args.classes) if args.classes else sorted({str(t) for t in targets})
    result = classification_accuracy(preds, targets, classes)
    print(_dict_table(result.to_dict()))
    _write_json(args.json, result.to_dict())
    return 0


def _cmd_caption(args: argparse.Namespace) -> int:
    from rsmetrics.caption import caption_scores

    records = _records(args.jsonl, not args.lenient)
    preds, refs = [], []
    for k, r in enumerate(records):
        where = f"{args.jsonl}: record {k + 1}"
        preds.append(_field(r, ("prediction", "caption", "answer", "response"), where))
        ref = _field(r, ("references", "reference", "ground_truth", "target"), where)
        if not (isinstance(ref, str) or (isinstance(ref, list) and ref and all(isinstance(x, str) for x in ref))):
            raise RSMetricsError(f"{where}: expected the reference caption(s) as a string or a list of strings")
        refs.append(ref)
    result = caption_scores(preds, refs, tokenize=not args.pretokenized)
    print(_dict_table(result.to_dict()))
    _write_json(args.json, result.to_dict())
    return 0


def _add_detection_options(p: argparse.ArgumentParser) -> None:
    from rsmetrics.detection.protocol import PRESETS
    from rsmetrics.parsers import PARSERS

    p.add_argument(
        "--classes", help="class list: dota1.0 (default), dota1.5, dota2.0, a file (one per line) or 'a,b,c'"
    )
    p.add_argument(
        "--preset",
        default="mmrotate",
        choices=sorted(PRESETS),
        help="evaluation protocol (default: mmrotate = RSCoVLM's AP_nc)",
    )
    p.add_argument("--iou", help="IoU thresholds: 0.5, '0.5,0.75' or '0.50:0.95'")
    p.add_argument("--iou-type", dest="iou_type", choices=["poly", "rbox", "hbb"])
    p.add_argument("--iou-op", dest="iou_op", choices=[">", ">="])
    p.add_argument("--difficult", choices=["ignore", "keep", "drop"])
    p.add_argument("--matching", choices=["voc", "coco"])
    p.add_argument("--ap-method", dest="ap_method", choices=["voc07", "area", "coco101"])
    p.add_argument("--class-average", dest="class_average", choices=["all", "with_gt"])
    p.add_argument("--tie-rule", dest="tie_rule", choices=["grouped", "stable", "random"])
    p.add_argument("--seeds", help="comma-separated seeds of the random tie rule")
    p.add_argument("--pixel", choices=["continuous", "plus_one"])
    p.add_argument("--gt-format", dest="gt_format", default="auto", choices=["auto", "dota", "coco"])
    p.add_argument("--pred-format", dest="pred_format", default="auto", choices=["auto", "task1", "coco", "vlm-jsonl"])
    p.add_argument(
        "--dialect", default="rscovlm_plain", choices=sorted(PARSERS), help="response format of vlm-jsonl predictions"
    )
    p.add_argument(
        "--frame", help="coordinate frame of VLM boxes: pixels (input size per record, default), grid:1000, bins:1000"
    )
    p.add_argument("--lenient", action="store_true", help="skip and count malformed lines instead of stopping")
    p.add_argument("--json", help="write the full result as JSON here")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rsmetrics`` command."""
    from rsmetrics.parsers import PARSERS

    parser = argparse.ArgumentParser(prog="rsmetrics", description="Fair metrics for remote-sensing VLMs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detection", help="AP / AP_nc / mF1 of detections")
    p.add_argument("--gt", required=True, help="DOTA label dir/file or COCO ground-truth JSON")
    p.add_argument("--pred", required=True, help="Task1 dir, COCO results JSON, or JSONL of VLM responses")
    _add_detection_options(p)
    p.set_defaults(func=_cmd_detection)

    p = sub.add_parser("fair-compare", help="tune a detector's threshold by AP_nc on val, score test (paper Sec. IV-D)")
    p.add_argument("--val-gt", dest="val_gt", required=True)
    p.add_argument("--val-pred", dest="val_pred", required=True)
    p.add_argument("--test-gt", dest="test_gt")
    p.add_argument("--test-pred", dest="test_pred")
    p.add_argument("--plot", help="write the AP_nc-vs-threshold plot (PNG, needs matplotlib)")
    _add_detection_options(p)
    p.set_defaults(func=_cmd_fair_compare)

    p = sub.add_parser("merge", help="merge patch detections to full images (polygon NMS) and write Task1 files")
    p.add_argument("--pred", required=True, help="Task1 directory of patch detections")
    p.add_argument("--out", required=True, help="output directory of merged Task1 files")
    p.add_argument("--classes")
    p.add_argument("--nms-iou", dest="nms_iou", type=float, default=0.1)
    p.add_argument("--lenient", action="store_true")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("grounding", help="Acc@IoU of referring-expression answers")
    p.add_argument(
        "--jsonl",
        required=True,
        help="records: answer, bbox (original px), image_width/height, input_width/height, dataset",
    )
    p.add_argument("--preset", default="rscovlm", choices=["rscovlm", "vrsbench", "vhm"])
    p.add_argument("--iou", default="0.5", help="thresholds, e.g. 0.5,0.7")
    p.add_argument("--dialect", default="rscovlm_plain", choices=sorted(PARSERS))
    p.add_argument("--frame", help="pixels (default), grid:1000, grid:100, bins:1000")
    p.add_argument("--lenient", action="store_true")
    p.add_argument("--json")
    p.set_defaults(func=_cmd_grounding)

    p = sub.add_parser("vqa", help="VQA accuracy (per question type) or the LRS-VQA protocol")
    p.add_argument(
        "--jsonl",
        required=True,
        help="records: prediction, ground_truth, question_type (LRS-VQA: question_id, category)",
    )
    p.add_argument(
        "--matcher", default="exact", help="exact, whole_word_contains, yes_no, wordnet, gt_in_pred, pred_in_gt, either"
    )
    p.add_argument("--normalizers", help="comma-separated normaliser names (default lower,strip,strip_period)")
    p.add_argument("--lrsvqa", action="store_true", help="score with the LRS-VQA protocol (per source and category)")
    p.add_argument("--wordnet-dir", dest="wordnet_dir", help="local WordNet corpus for --matcher wordnet")
    p.add_argument("--lenient", action="store_true")
    p.add_argument("--json")
    p.set_defaults(func=_cmd_vqa)

    p = sub.add_parser("classification", help="scene-classification accuracy against a class vocabulary")
    p.add_argument("--jsonl", required=True, help="records: prediction, target")
    p.add_argument("--classes", help="class file (one per line) or 'a,b,c' (default: the set of targets)")
    p.add_argument("--lenient", action="store_true")
    p.add_argument("--json")
    p.set_defaults(func=_cmd_classification)

    p = sub.add_parser("caption", help="BLEU-1..4, CIDEr-D and ROUGE-L of captions (the coco-caption numbers)")
    p.add_argument("--jsonl", required=True, help="records: prediction, references (a string or a list)")
    p.add_argument("--pretokenized", action="store_true", help="captions are already tokenized: split on spaces")
    p.add_argument("--lenient", action="store_true")
    p.add_argument("--json")
    p.set_defaults(func=_cmd_caption)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsmetrics`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (RSMetricsError, FileNotFoundError, NotADirectoryError) as err:
        _log(f"rsmetrics {args.command}: error: {err}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
