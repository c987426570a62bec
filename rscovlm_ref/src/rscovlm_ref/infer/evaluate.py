"""Evaluate a model on an rsformat dataset: predictions (resumable JSONL), then rsmetrics scores.

:func:`predict` walks a dataset split in order, builds each record's prompt
exactly as training rendered it (:func:`rsformat.render.render_prompt` in the
chosen frame and style), answers with an :class:`~rscovlm_ref.infer.engine.InferenceEngine`
and appends one JSON line per record to ``predictions.jsonl``, flushed and
synced after every batch. A rerun resumes: records already answered are
skipped, and a last line cut by a kill is dropped (counted) and answered again.
A record that cannot be asked (unreadable image, render error) gets a line
with ``error`` (counted; it scores as wrong, never silently left out).

:func:`score` reads the predictions back and scores them with rsmetrics by
record family, the paper's protocol:

* detection: boxes parsed in each record's input frame (scalable boxes),
  mapped back to original pixels; AP_nc with no confidence scores, mF1
  (``mmrotate`` preset: RSCoVLM's published numbers) over the dataset's classes;
* grounding: the first box, Acc@0.5 (``rscovlm`` preset), per source dataset;
* zoom (LRS-VQA): the benchmark's scoring (``lrsvqa_scores``; WordNet optional),
  multiple-choice questions by their letter;
* conversation: ``classification`` tasks by exact class match (no substring
  test), captions (``caption``, ``region_caption``, ``grounded_caption``) by
  BLEU-1..4, CIDEr-D and ROUGE-L (:mod:`rsmetrics.caption`), others by VQA accuracy
  (OA, and AA over the question types the records' metadata name: RSVQA, VRSBench).

Frames: ``RenderFrame.smart(min_pixels, max_pixels)`` (default 224² to
1008², the training budget); the paper's "Max Mode" shows every image at the
upper limit, ``RenderFrame.smart(max_pixels, max_pixels)``.

Example (a scripted backend stands in for a model: it zooms, then answers):
    >>> import tempfile
    >>> from PIL import Image
    >>> from rscovlm_ref.infer.engine import InferenceEngine
    >>> from rsformat.records import ZoomRecord
    >>> rec = ZoomRecord("STAR_1", "lrs", "test", "a.png", 800, 600, question="What is it?", answer="ship",
    ...                  category="object")
    >>> call = '<tool_call>\\n{"name": "image_zoom_in", "arguments": {"bbox": [0, 0, 56, 56]}}\\n</tool_call>'
    >>> class Scripted:
    ...     def generate(self, requests):
    ...         return ["Ship." if len(r.images) == 2 else call for r in requests]
    >>> out = tempfile.mkdtemp()
    >>> report = predict([EvalRecord(rec, lambda i: Image.new("RGB", (800, 600)))], InferenceEngine(Scripted()),
    ...                  out, frame=RenderFrame.smart(), quiet=True)
    >>> lines = read_predictions(out)
    >>> # 800 x 600 is shown at 812 x 588: the call's 56 is ceil(56 * 800 / 812) = 56 and ceil(56 * 600 / 588) = 58
    >>> lines["STAR_1"]["prediction"], lines["STAR_1"]["zooms"], score([rec], lines)["zoom"]["open_ended"]["overall_accuracy"]
    ('Ship.', [[0, 0, 56, 58]], 1.0)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rscovlm_ref.infer.engine import InferenceEngine, InferenceItem
from rsformat.records import ConversationRecord, DetectionRecord, GroundingRecord, ZoomRecord
from rsformat.render import RenderFrame, RenderStyle, render, render_prompt
from rsmetrics.io._common import atomic_write_json, atomic_write_text

__all__ = [
    "DatasetRecords",
    "EvalRecord",
    "PredictReport",
    "SetupMismatchError",
    "default_style",
    "detections_of",
    "evaluate_dataset",
    "model_fingerprint",
    "open_records",
    "predict",
    "read_predictions",
    "score",
    "write_merged_task1",
]

logger = logging.getLogger(__name__)

PREDICTIONS_NAME = "predictions.jsonl"
CAPTION_TASKS = frozenset({"caption", "region_caption", "grounded_caption"})
"""Conversation tasks scored as captions (BLEU, CIDEr-D, ROUGE-L), not by exact match."""
SETUP_NAME = "setup.json"


class SetupMismatchError(ValueError):
    """Existing predictions were made by another model or setup: resuming would mix two runs."""


def model_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a checkpoint folder cheaply: its path and its weight files' sizes and mtimes.

    A Hub id (not a folder) is identified by its name.
    """
    folder = Path(path)
    if not folder.is_dir():
        return {"model": str(path)}
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    return {
        "model": str(folder.resolve()),
        "weights": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files},
    }


def predictions_path(out_dir: str | os.PathLike[str], shard: tuple[int, int] = (0, 1)) -> Path:
    """``predictions.jsonl``, or ``predictions-K-of-N.jsonl`` for shard ``K`` of ``N``."""
    index, count = shard
    if count == 1:
        return Path(out_dir) / PREDICTIONS_NAME
    return Path(out_dir) / f"predictions-{index:05d}-of-{count:05d}.jsonl"


def _prediction_files(out: Path) -> list[Path]:
    return sorted(out.glob("predictions*.jsonl"))


def data_fingerprint(dataset: str | os.PathLike[str], config: str | None, split: str) -> dict[str, Any]:
    """The split's parquet files with their sizes and mtimes (a changed dataset is another setup)."""
    folder = Path(str(dataset))
    if str(dataset).startswith("hf://") or not folder.is_dir():
        return {"dataset": str(dataset)}
    if config is None:
        configs = [p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.parquet"))]
        config = configs[0] if len(configs) == 1 else None
    files = sorted((folder / config).glob(f"{split}-*.parquet")) if config else []
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def package_versions() -> dict[str, str]:
    """Versions of the three packages (the prompts, parsers and metrics behind a number)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("rsmetrics", "rsformat", "rscovlm-ref"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
            out[name] = "unknown"
    return out


def _check_setup(path: Path, setup: Mapping[str, Any] | None, overwrite: bool, count: int) -> None:
    out, saved = path.parent, path.parent / SETUP_NAME
    if overwrite:
        # this shard's file, and files of another shard count (no rank of this run writes those);
        # the other shards of this run remove their own
        own = predictions_path(out, (0, count)).name if count == 1 else f"-of-{count:05d}.jsonl"
        for f in _prediction_files(out):
            if f == path or not f.name.endswith(own):
                f.unlink(missing_ok=True)
        if not _prediction_files(out):
            saved.unlink(missing_ok=True)
    if setup is None:
        return
    current = json.loads(json.dumps(dict(setup), default=str))
    if _prediction_files(out) and saved.is_file() and not overwrite:
        before = json.loads(saved.read_text(encoding="utf-8"))
        if before != current:
            changed = sorted(k for k in set(before) | set(current) if before.get(k) != current.get(k))
            raise SetupMismatchError(
                f"{out} holds predictions of another setup (differs in {changed}); "
                "use another output folder, or overwrite to start again"
            )
        return
    atomic_write_json(saved, current)


def default_style(family: str) -> RenderStyle:
    """The paper's evaluation style of a family: detection ``plain-quad``, grounding ``plain-hbb``, zoom on."""
    if family == "detection":
        return RenderStyle("plain", "quad")
    return RenderStyle("plain", "hbb", tool_format="qwen")


@dataclass
class EvalRecord:
    """A record to evaluate and its images: a callable that opens image ``i`` (original pixels)."""

    record: Any
    open_image: Callable[[int], Any]


@dataclass
class PredictReport:
    """What :func:`predict` did: nothing is skipped without being counted here."""

    path: str
    records: int = 0
    written: int = 0
    skipped_done: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    truncated_lines: int = 0
    engine: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _num_images(record: Any) -> int:
    return len(record.images) if isinstance(record, ConversationRecord) else 1


def _target(record: Any, frame: RenderFrame, style: RenderStyle) -> str | None:
    """The reference answer text of a zoom or conversation record (None for detection and grounding)."""
    if isinstance(record, ZoomRecord):
        return record.answer
    if isinstance(record, ConversationRecord):
        messages = render(record, frame, style)
        first = next((i for i, m in enumerate(messages) if m.role == "assistant"), None)
        return None if first is None else messages[first].text_content
    return None


def _question_type(record: Any) -> str | None:
    """The question type a conversation's metadata names (RSVQA ``question_type``, VRSBench ``type``)."""
    if not isinstance(record, ConversationRecord) or not record.metadata:
        return None
    try:
        meta = json.loads(record.metadata)
    except ValueError:
        return None
    value = meta.get("question_type", meta.get("type")) if isinstance(meta, dict) else None
    return None if value is None else str(value)


def build_item(
    entry: EvalRecord,
    frame: RenderFrame,
    style: RenderStyle,
    *,
    categories: Sequence[str] | None = None,
    zoom: bool = True,
    no_zoom_categories: Sequence[str] = ("count",),
) -> InferenceItem:
    """The engine item of a record: the training prompt in ``frame`` and ``style``, its original images.

    Zoom records zoom unless ``zoom`` is off or their category is in
    ``no_zoom_categories`` (RSCoVLM's evaluation: counting questions were
    trained as plain QA, their regions being several).
    """
    record = entry.record
    wants_zoom = isinstance(record, ZoomRecord) and zoom and (record.category or "") not in no_zoom_categories
    item_style = RenderStyle(style.output, style.box, style.prompt, style.system, "qwen", zoom=wants_zoom)
    messages = render_prompt(record, frame, item_style, categories=categories)
    images = [entry.open_image(i) for i in range(_num_images(record))]
    return InferenceItem(str(record.id), messages, images, frame, zoom=wants_zoom)


def _read_lines(path: Path, repair: bool = True) -> tuple[dict[str, dict[str, Any]], int]:
    """Complete prediction lines by id (the last of a duplicated id wins), and how many were cut short.

    ``repair``: rewrite the file without a last line cut by a kill (only for
    the file this process writes: another rank may be appending to its own).
    """
    done: dict[str, dict[str, Any]] = {}
    truncated = 0
    if not path.is_file():
        return done, 0
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # the last line, cut by a kill: answered again
                truncated += 1
                continue
            raise ValueError(f"{path}: line {i + 1} is not JSON (the file is damaged, not cut short)") from None
        done[str(entry["id"])] = entry
        kept.append(line)
    if truncated and repair:
        atomic_write_text(path, "".join(k + "\n" for k in kept))
    return done, truncated


def read_predictions(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The prediction lines of a ``predictions.jsonl``, or of every ``predictions*.jsonl`` of a folder (shards)."""
    p = Path(path)
    if not p.is_dir():
        return _read_lines(p)[0]
    merged: dict[str, dict[str, Any]] = {}
    for f in _prediction_files(p):
        merged.update(_read_lines(f, repair=False)[0])
    return merged


def predict(
    records: Iterable[EvalRecord],
    engine: InferenceEngine,
    out_dir: str | os.PathLike[str],
    *,
    frame: RenderFrame,
    style: RenderStyle | None = None,
    categories: Sequence[str] | None = None,
    zoom: bool = True,
    no_zoom_categories: Sequence[str] = ("count",),
    batch_size: int = 8,
    total: int | None = None,
    quiet: bool = False,
    setup: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> PredictReport:
    """Answer every record not yet in ``out_dir/predictions.jsonl`` (see the module doc).

    Args:
        records: The records to answer, in order.
        engine: The inference engine.
        out_dir: Folder of ``predictions.jsonl``.
        frame: Frame the images are shown in (and the boxes read in).
        style: Render style (default: :func:`default_style` of each record's family).
        categories: The class list of a detection dataset (asked on every image).
        zoom, no_zoom_categories: See :func:`build_item`.
        batch_size: Records per engine call.
        total: Number of records, for the progress bar.
        quiet: No progress bar.
        setup: What the predictions depend on (model fingerprint, frame, style...),
            kept in ``setup.json``; resuming with another setup raises
            :class:`SetupMismatchError` instead of mixing two runs.
        overwrite: Start again: existing predictions are removed.
        shard: ``(K, N)``: answer only the records at positions ``K, K + N, ...``
            into ``predictions-K-of-N.jsonl`` (one process per GPU, see
            :func:`evaluate_dataset`).
    """
    if batch_size <= 0:
        raise ValueError(f"Expected a positive batch_size, but got {batch_size}")
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"Expected a shard (K, N) with 0 <= K < N, but got {shard}")
    path = predictions_path(out_dir, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_setup(path, setup, overwrite, count)
    done, truncated = _read_lines(path)
    for other in _prediction_files(path.parent):  # answered by an earlier run with another shard count
        if other != path:
            done = {**_read_lines(other, repair=False)[0], **done}
    report = PredictReport(str(path), truncated_lines=truncated)
    errors: Counter[str] = Counter()
    bar = None
    if not quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="predict", unit=" records")
    stats_before = engine.stats.copy()

    def flush(batch: list[tuple[EvalRecord, InferenceItem | None, str | None]], fh: Any) -> None:
        items = [item for _, item, _ in batch if item is not None]
        answers = iter(engine.run(items)) if items else iter(())
        for entry, item, error in batch:
            record = entry.record
            line: dict[str, Any] = {
                "id": str(record.id),
                "family": record.family,
                "task": getattr(record, "task", record.family),
                "source": record.source,
            }
            question_type = _question_type(record)
            if question_type is not None:
                line["question_type"] = question_type
            item_style = style or default_style(record.family)
            if item is None:
                line.update(prediction=None, error=error)
            else:
                answer = next(answers)
                line.update(
                    prediction=answer.text,
                    status=answer.status,
                    turns=answer.turns,
                    zooms=[list(z) for z in answer.zooms],
                    problems=answer.problems,
                    zoom=item.zoom,
                    truncated=answer.truncated,
                )
                if answer.input_size is not None:
                    line.update(input_width=answer.input_size[0], input_height=answer.input_size[1])
                if item.images:
                    line.update(image_width=item.images[0].width, image_height=item.images[0].height)
            try:
                line["target"] = _target(record, frame, item_style)
            except Exception as err:  # the record's own error is already on the line (or will be scored)
                line["target"] = None
                line.setdefault("error", f"{type(err).__name__}: {err}")
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            report.written += 1
        fh.flush()
        os.fsync(fh.fileno())
        if bar is not None:
            bar.update(len(batch))

    with path.open("a", encoding="utf-8") as fh:
        batch: list[tuple[EvalRecord, InferenceItem | None, str | None]] = []
        for position, entry in enumerate(records):
            if position % count != index:
                continue
            report.records += 1
            if str(entry.record.id) in done:
                report.skipped_done += 1
                if bar is not None:
                    bar.update(1)
                continue
            item_style = style or default_style(entry.record.family)
            try:
                item = build_item(
                    entry, frame, item_style, categories=categories, zoom=zoom, no_zoom_categories=no_zoom_categories
                )
                batch.append((entry, item, None))
            except Exception as err:  # one bad record must not stop an evaluation; it is written and counted
                reason = type(err).__name__
                errors[reason] += 1
                logger.warning("record %r cannot be asked (%s): %s", entry.record.id, reason, err)
                batch.append((entry, None, f"{reason}: {err}"))
            if len(batch) >= batch_size:
                flush(batch, fh)
                batch = []
        if batch:
            flush(batch, fh)
    if bar is not None:
        bar.close()
    report.errors = dict(errors)
    report.engine = dict(engine.stats - stats_before)
    if report.engine.get("truncated"):
        logger.warning(
            "%d answers stopped at the token limit (max_new_tokens): their last objects or words are missing",
            report.engine["truncated"],
        )
    return report


# --------------------------------------------------------------------------- scoring


def detections_of(
    records: Sequence[DetectionRecord], lines: Mapping[str, dict[str, Any]], classes: Sequence[str], style: RenderStyle
) -> tuple[list[Any], Any]:
    """The predicted detections (original pixels, no scores) of detection records, and the parse report."""
    from rsmetrics.detection.vlm import detections_from_responses

    responses = []
    for r in records:
        line = lines[str(r.id)]
        responses.append(
            {
                "image_id": str(r.id),
                "response": line.get("prediction") or "",
                "image_width": r.width,
                "image_height": r.height,
                "input_width": line.get("input_width", r.width),
                "input_height": line.get("input_height", r.height),
            }
        )
    return detections_from_responses(responses, classes, dialect=style.dialect)


def write_merged_task1(
    records: Sequence[DetectionRecord],
    lines: Mapping[str, dict[str, Any]],
    classes: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    style: RenderStyle | None = None,
    iou_threshold: float = 0.1,
) -> dict[str, Any]:
    """Merge patch detections into their full images and write DOTA Task1 submission files.

    The records must be split patches named ``<image>__<size or rate>__<x>___<y>``
    (rsformat's and mmrotate's splitters). Boxes are moved to full-image pixels
    and de-duplicated per class by polygon NMS (:func:`rsmetrics.merge.merge_patch_detections`;
    a VLM gives no scores, so every detection scores 1 and earlier patches win
    ties); ``Task1_<class>.txt`` is written for every class (atomically), as
    the DOTA evaluation server expects.

    Raises:
        ValueError: a record id that is not a patch name.
    """
    from rsmetrics.io.dota import write_task1
    from rsmetrics.merge import merge_patch_detections, parse_patch_name

    for r in records:
        try:
            parse_patch_name(str(r.id))
        except ValueError as err:
            raise ValueError(f"--merge-patches needs split patches; record {r.id!r}: {err}") from None
    patches, _ = detections_of(records, lines, classes, style or default_style("detection"))
    merged = merge_patch_detections(patches, iou_threshold=iou_threshold)
    files = write_task1(merged, out_dir, classes)
    return {
        "task1_dir": str(out_dir),
        "files": len(files),
        "images": len(merged),
        "patches": len(patches),
        "detections_before_nms": int(sum(len(p) for p in patches)),
        "detections": int(sum(len(m) for m in merged)),
    }


def _detection_scores(
    records: Sequence[DetectionRecord],
    lines: Mapping[str, dict[str, Any]],
    classes: Sequence[str],
    style: RenderStyle,
    preset: str,
    plot: Path | None = None,
) -> dict[str, Any]:
    from rsmetrics.detection.evaluate import evaluate_detection
    from rsmetrics.detection.types import ImageAnnotations

    predictions, parse = detections_of(records, lines, classes, style)
    if not any(r.objects for r in records):
        return {
            "metric": f"AP_nc ({preset})",
            "note": "no ground-truth object in these records (a test split?): nothing to score",
            "parse": parse.to_dict(),
        }
    truths = [
        ImageAnnotations(
            str(r.id),
            r.quads().reshape(-1, 8),
            [o.category for o in r.objects],
            [int(o.difficult) for o in r.objects],
        )
        for r in records
    ]
    result = evaluate_detection(predictions, truths, classes, preset)
    plotted = None
    if plot is not None and importlib.util.find_spec("matplotlib") is not None:
        result.plot(plot)
        plotted = str(plot)
    return {
        "plot": plotted,
        "metric": f"AP_nc ({preset})",
        "map": result.map,
        "ap50": result.ap50,
        "mf1": result.mf1,
        "micro_f1": result.micro_f1,
        "per_class": {
            c.name: {"ap": c.ap[0], "f1": c.f1[0], "num_gt": c.num_gt, "num_predictions": c.num_predictions}
            for c in result.classes
        },
        "parse": parse.to_dict(),
        "counts": result.counts,
        "table": result.to_table(),
    }


def _grounding_scores(
    records: Sequence[GroundingRecord], lines: Mapping[str, dict[str, Any]], style: RenderStyle, preset: str
) -> dict[str, Any]:
    from rsmetrics.grounding import score_grounding_answers
    from rsmetrics.parsers import Frame

    answers = [lines[str(r.id)].get("prediction") for r in records]
    frames = [
        Frame.pixels(
            float(lines[str(r.id)].get("input_width", r.width)), float(lines[str(r.id)].get("input_height", r.height))
        )
        for r in records
    ]
    result = score_grounding_answers(
        answers,
        [list(r.hbb) for r in records],
        dialect=style.dialect,
        frames=frames,
        image_sizes=[(r.width, r.height) for r in records],
        preset=preset,
        datasets=[r.source for r in records],
    )
    return {"metric": f"Acc@0.5 ({preset})", **result.to_dict()}


def _zoom_scores(records: Sequence[ZoomRecord], lines: Mapping[str, dict[str, Any]], matcher: str) -> dict[str, Any]:
    from rsmetrics.text import lrsvqa_scores, multiple_choice_accuracy

    out: dict[str, Any] = {}
    mcq = [r for r in records if r.choices]
    open_ended = [r for r in records if not r.choices]
    if open_ended:
        result = lrsvqa_scores(
            [{"question_id": str(r.id), "category": r.category, "ground_truth": r.answer} for r in open_ended],
            [lines[str(r.id)].get("prediction") for r in open_ended],
            matcher=matcher,
        )
        out["open_ended"] = {"metric": f"LRS-VQA ({matcher})", **result.to_dict()}
    if mcq:
        result = multiple_choice_accuracy([lines[str(r.id)].get("prediction") for r in mcq], [r.answer for r in mcq])
        per_category = {}
        for category in sorted({str(r.category) for r in mcq}):
            group = [r for r in mcq if str(r.category) == category]
            part = multiple_choice_accuracy(
                [lines[str(r.id)].get("prediction") for r in group], [r.answer for r in group]
            )
            per_category[category] = {"accuracy": part.accuracy, "num_total": len(group)}
        out["multiple_choice"] = {"metric": "MCQ accuracy", **result.to_dict(), "per_category": per_category}
    zoomed = [lines[str(r.id)] for r in records if lines[str(r.id)].get("zoom")]
    out["zoom"] = {
        "asked": len(zoomed),
        "zoomed": sum(1 for line in zoomed if line.get("zooms")),
        "status": dict(Counter(str(line.get("status")) for line in zoomed)),
    }
    return out


def _conversation_scores(lines: Sequence[dict[str, Any]], matcher: str) -> dict[str, Any]:
    from rsmetrics.caption import caption_scores
    from rsmetrics.text import classification_accuracy, vqa_accuracy

    out: dict[str, Any] = {}
    scored = [line for line in lines if line.get("target")]
    for task in sorted({str(line.get("task")) for line in scored}):
        group = [line for line in scored if str(line.get("task")) == task]
        preds = [line.get("prediction") for line in group]
        targets = [str(line["target"]) for line in group]
        if task == "classification":
            result: Any = classification_accuracy(preds, targets, sorted(set(targets)))
            out[task] = {"metric": "exact class accuracy", **result.to_dict()}
        elif task in CAPTION_TASKS:
            result = caption_scores(preds, targets)
            out[task] = {"metric": "coco-caption BLEU / CIDEr-D / ROUGE-L", **result.to_dict()}
        else:
            # per question type (RSVQA presence / comparison / ..., VRSBench's 12 types): OA and AA
            types = [line.get("question_type") for line in group]
            question_types = [str(t) for t in types] if any(t is not None for t in types) else None
            result = vqa_accuracy(preds, targets, matcher=matcher, question_types=question_types)
            out[task] = {"metric": f"VQA accuracy ({matcher})", **result.to_dict()}
    unscored = len(lines) - len(scored)
    if unscored:
        out["without_reference"] = unscored
    return out


def score(
    records: Sequence[Any],
    lines: Mapping[str, dict[str, Any]],
    *,
    style: RenderStyle | None = None,
    classes: Sequence[str] | None = None,
    preset: str = "mmrotate",
    matcher: str = "exact",
    plot_dir: str | os.PathLike[str] | None = None,
    grounding_preset: str = "rscovlm",
) -> dict[str, Any]:
    """Scores of the predicted ``records`` by family (see the module doc).

    ``preset``: the detection protocol (rsmetrics ``dota`` / ``mmrotate`` / ``coco``);
    ``grounding_preset``: the grounding one (``rscovlm``: the paper's, ``vrsbench``, ``vhm``).

    ``plot_dir``: write ``detection_per_class.png`` there (per-class AP and F1;
    when matplotlib is installed).

    Records without a prediction line are reported as ``missing`` and left out
    of the scores (a partial run); lines with ``error`` score as wrong answers
    (detection: an image with no detections).
    """
    present = [r for r in records if str(r.id) in lines]
    out: dict[str, Any] = {
        "records": len(records),
        "predicted": len(present),
        "missing": len(records) - len(present),
        "errors": sum(1 for r in present if lines[str(r.id)].get("error")),
    }
    by_family: dict[str, list[Any]] = {}
    for r in present:
        by_family.setdefault(r.family, []).append(r)
    for family, group in sorted(by_family.items()):
        family_style = style or default_style(family)
        if family == "detection":
            names = list(classes) if classes is not None else sorted({o.category for r in group for o in r.objects})
            plot = None if plot_dir is None else Path(plot_dir) / "detection_per_class.png"
            out[family] = _detection_scores(group, lines, names, family_style, preset, plot)
        elif family == "grounding":
            out[family] = _grounding_scores(group, lines, family_style, grounding_preset)
        elif family == "zoom":
            out[family] = _zoom_scores(group, lines, matcher)
        else:
            out[family] = _conversation_scores([lines[str(r.id)] for r in group], matcher)
    return out


def write_metrics(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> None:
    """``metrics.json``, written atomically (numpy values converted)."""

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    atomic_write_json(path, clean(dict(metrics)))


class DatasetRecords(Sequence[EvalRecord]):
    """The records of a dataset split, read on access (a split's images are never all in memory).

    Each item is an :class:`EvalRecord` whose opener decodes that record's images.
    """

    def __init__(self, source: Any, size: int) -> None:
        self.source = source
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> EvalRecord:  # type: ignore[override]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        record, cells = self.source.record(index % self.size)

        def opener(k: int) -> Any:
            if not 0 <= k < len(cells):
                raise ValueError(f"record {record.id!r} has no image {k}")
            return self.source.open_image(cells[k])

        return EvalRecord(record, opener)


def open_records(
    dataset: str | os.PathLike[str],
    *,
    config: str | None = None,
    split: str = "test",
    image_root: str | None = None,
    limit: int | None = None,
) -> tuple[DatasetRecords, list[str] | None]:
    """The records of an rsformat dataset split (the first ``limit``), and its classes if it is a detection one."""
    from rscovlm_ref.data.dataset import RecordSource
    from rscovlm_ref.data.mixture import DatasetSpec

    spec = DatasetSpec(name=Path(str(dataset)).name or str(dataset), path=str(dataset), config=config, split=split,
                       image_root=image_root)  # fmt: skip
    source = RecordSource(spec, ".")
    n = source.size if limit is None else min(limit, source.size)
    classes = source.categories() if source.family == "detection" else None
    return DatasetRecords(source, n), classes


def evaluate_dataset(
    engine: InferenceEngine,
    dataset: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: str | None = None,
    split: str = "test",
    image_root: str | None = None,
    limit: int | None = None,
    frame: RenderFrame | None = None,
    style: RenderStyle | None = None,
    zoom: bool = True,
    no_zoom_categories: Sequence[str] = ("count",),
    batch_size: int = 8,
    preset: str = "mmrotate",
    matcher: str = "exact",
    quiet: bool = False,
    model: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    merge_patches: bool = False,
    grounding_preset: str = "rscovlm",
) -> dict[str, Any]:
    """Predict (resuming) and score one dataset split; writes ``predictions.jsonl`` and ``metrics.json``.

    ``model`` (the checkpoint) is fingerprinted into the run's setup, so a
    rerun after retraining refuses to resume old predictions (``overwrite``
    starts again). Returns the metrics, with the prediction report under ``"run"``.

    Data parallel: ``shard=(K, N)`` (default: ``RANK`` and ``WORLD_SIZE`` of the
    environment, as ``torchrun`` sets them) answers every ``N``-th record into
    its own file. No process waits for another: whichever finds every record
    answered when it finishes scores them and writes ``metrics.json`` (several
    may, with the same result); the others return ``{"complete": False, ...}``.

    ``merge_patches`` (detection on split patches): also merge the patches'
    detections into full images and write DOTA Task1 files to ``out_dir/task1``
    (:func:`write_merged_task1`), the test-server submission.
    """
    entries, classes = open_records(dataset, config=config, split=split, image_root=image_root, limit=limit)
    records = [e.record for e in entries]  # without their images: the entries open those one at a time
    ids = Counter(str(r.id) for r in records)
    repeated = sorted(i for i, n in ids.items() if n > 1)
    if repeated:  # predictions are keyed by id: two records with one id would share one answer
        raise ValueError(
            f"{dataset} ({config}, {split}): {len(repeated)} record ids occur more than once, e.g. {repeated[:3]}; "
            "ids must be unique to evaluate (rsformat validate reports them)"
        )
    frame = frame or RenderFrame.smart()
    if shard is None:
        shard = (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    setup = {
        **(model_fingerprint(model) if model is not None else {}),
        "dataset": str(Path(str(dataset)).resolve()) if not str(dataset).startswith("hf://") else str(dataset),
        "config": config,
        "split": split,
        "data_files": data_fingerprint(dataset, config, split),
        "frame": frame.to_dict(),
        "style": None if style is None else {"output": style.output, "box": style.box},
        "zoom": zoom,
        "max_zoom_rounds": engine.max_zoom_rounds,
        "no_zoom_categories": list(no_zoom_categories),
    }
    report = predict(
        entries,
        engine,
        out_dir,
        frame=frame,
        style=style,
        categories=classes,
        zoom=zoom,
        no_zoom_categories=no_zoom_categories,
        batch_size=batch_size,
        total=len(entries),
        quiet=quiet,
        setup=setup,
        overwrite=overwrite,
        shard=shard,
    )
    lines = read_predictions(out_dir)
    missing = sum(1 for r in records if str(r.id) not in lines)
    if missing:
        return {"complete": False, "records": len(entries), "predicted": len(entries) - missing,
                "shard": list(shard), "run": report.to_dict()}  # fmt: skip
    metrics = score(
        records,
        lines,
        style=style,
        classes=classes,
        preset=preset,
        matcher=matcher,
        plot_dir=out_dir,
        grounding_preset=grounding_preset,
    )
    if merge_patches:
        if classes is None:
            raise ValueError("--merge-patches is for detection datasets")
        metrics["merged"] = write_merged_task1(records, lines, classes, Path(out_dir) / "task1", style=style)
    metrics["complete"] = True
    metrics["run"] = report.to_dict()
    metrics["setup"] = setup
    metrics["versions"] = package_versions()
    write_metrics(Path(out_dir) / "metrics.json", metrics)
    return metrics
