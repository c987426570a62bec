"""GeoChat-Bench (the 7 JSONL files of ``MBZUAI/GeoChat-Bench``) -> conversations and grounding.

Layout (dataset-formats.md §4; RSCoVLM's bundle keeps it as
``geochat_data/benchmark/converted/*.jsonl`` with ``geochat_data/images/``)::

    <root>/[benchmark/converted/]{aid,UCmerced,hrben,lrben,referring,region_captioning,grounding_description}.jsonl
    <root>/images/<image_id>.png                 referring, region captioning, grounding description
    <root>/AID/<Class>/<file>.jpg                 aid (first existing folder of the candidates, see IMAGE_DIRS)
    <root>/UCMerced_LandUse/Images/<class>/<file>.tif
    <root>/RSVQA_HR/Data/<id>.tif, <root>/RSVQA_LR/Images_LR/<id>.tif
    <root>/.../USGSanswers.json, all_answers.json   RSVQA answers (HR, LR), joined by question id

Two converters, one per record family; splits are named after the files:

``geochat_bench`` (conversations)
    ``aid``, ``UCmerced`` (task ``classification``: the file's prompt, the
    class as answer; ``"MediumResidentialgt"`` -> ``"medium residential"``,
    AID image extensions rewritten to ``.jpg``), ``hrben``, ``lrben`` (task
    ``vqa``; the answer is joined from the RSVQA answers JSON, records
    without one skipped as ``missing_answer``; the instruction suffix is the
    counted rule ``answer_instruction_suffix``), ``region_captioning`` (task
    ``region_caption``: "What is the object present at {box}"), and
    ``grounding_description`` (task ``grounded_caption``). GeoChat boxes in
    the text become ``<box:K>`` placeholders, the boxes stored in ``metadata``
    as canonical quads in original pixels (:func:`~rsformat.converters._llava.box_metadata`,
    source format ``"geochat"``), rendered back by :func:`rsformat.render.render`.
``geochat_bench_referring`` (grounding)
    ``referring``: one :class:`~rsformat.records.GroundingRecord` per
    expression; ``ground_truth`` is a GeoChat box on the 0-100 grid
    (``{<x1><y1><x2><y2>|<θ>}``), read with
    :func:`rsmetrics.parsers.parse_response` (``Frame.grid(100)``). A rotated
    box gives the quad and its enclosing hbb. Records with several boxes are
    skipped (``multiple_boxes``): a grounding record holds one.

Options: ``annotation_dir`` (the folder of the JSONL files), ``image_dirs``
(``{split: folder}`` overriding :data:`IMAGE_DIRS`), ``answers``
(``{"hrben": path, "lrben": path}`` relative to the root), ``check_images``
(default ``True``).

Example:
    >>> bench_class("MediumResidentialgt"), bench_class("denseresidential"), bench_class("BareLand")
    ('medium residential', 'dense residential', 'bare land')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rsformat.converters._llava import (
    RecordError,
    SourceBox,
    box_metadata,
    image_size,
    iter_jsonl,
    note,
    read_json,
    relative,
    resolve_image,
    tokenize_boxes,
)
from rsformat.converters.base import CleaningRule, ConversionReport, Converter, apply_rules, register
from rsformat.converters.geochat import GEOCHAT_ASSISTANT_RULES, GEOCHAT_USER_RULES
from rsformat.converters.lrs_vqa import LRS_VQA_RULES
from rsformat.converters.refgeo import checked_hbb
from rsformat.converters.scene_cls import UcMercedConverter, normalise_class
from rsformat.records import ContentPart, ConversationRecord, GroundingRecord, Message
from rsmetrics.parsers import Frame, parse_response

__all__ = [
    "BENCH_FILES",
    "CLASS_RULES",
    "IMAGE_DIRS",
    "GeoChatBenchConverter",
    "GeoChatBenchReferringConverter",
    "bench_class",
]

BENCH_FILES: tuple[str, ...] = (
    "aid",
    "UCmerced",
    "hrben",
    "lrben",
    "referring",
    "region_captioning",
    "grounding_description",
)
"""The file stems of GeoChat-Bench, which are also the split names."""

IMAGE_DIRS: dict[str, tuple[str, ...]] = {
    "aid": ("AID", "images/AID", "."),
    "UCmerced": ("UCMerced_LandUse/Images", "UCMerced_LandUse", "Images", "."),
    "hrben": ("RSVQA_HR/Data", "Data", "."),
    "lrben": ("RSVQA_LR/Images_LR", "Images_LR", "."),
    "referring": ("images", "."),
    "region_captioning": ("images", "."),
    "grounding_description": ("images", "."),
}
"""Candidate image folders per split (relative to the root), first existing wins."""

_ANSWERS: dict[str, tuple[str, ...]] = {
    # RSCoVLM and GeoChat join these combined answer files (dataset-formats.md §13.1)
    "hrben": ("USGSanswers.json", "RSVQA_HR/USGSanswers.json", "hrben/USGSanswers.json"),
    "lrben": ("all_answers.json", "RSVQA_LR/all_answers.json", "lrben/all_answers.json"),
}
_ANNOTATION_DIRS = ("benchmark/converted", "converted", "benchmark", ".")
_GRID = Frame.grid(100)
# GeoChat's box text (as geochat_instruct reads it): four numbers and an optional angle
_GEOCHAT_BOX = re.compile(r"\{(?:<-?\d+(?:\.\d+)?>){4}(?:\|<(?P<angle>-?\d+(?:\.\d+)?)>)?\}")
# only the <p>/</p> rule of the GeoChat prompt rules applies to a bare expression
_MARKER_RULES = tuple(r for r in GEOCHAT_USER_RULES if r.name == "phrase_markers")

CLASS_RULES: tuple[CleaningRule, ...] = (
    CleaningRule(
        "medium_residential_gt",
        lambda s: "MediumResidential" if s == "MediumResidentialgt" else s,
        "GeoChat-Bench's 'MediumResidentialgt' label (RSCoVLM format_geochat.py)",
    ),
)
"""Fixes of the raw class labels, applied before normalisation."""


def bench_class(raw: str, report: ConversionReport | None = None) -> str:
    """A GeoChat-Bench class label as lower-case words (AID CamelCase, UCM run-together names).

    Example:
        >>> bench_class("StorageTanks"), bench_class("storagetanks")
        ('storage tanks', 'storage tanks')
    """
    fixed = apply_rules(raw.strip(), CLASS_RULES, report)
    name = UcMercedConverter.aliases.get(fixed.lower()) or normalise_class(fixed)
    if report is not None and name != raw:
        report.mapped(raw, name)
    return name


def _read_geochat_box(match: re.Match[str], size: tuple[int, int]) -> SourceBox:
    """One ``{<x1><y1><x2><y2>|<θ>}`` match (0-100 grid) as a box in original pixels.

    Example:
        >>> box = _read_geochat_box(_GEOCHAT_BOX.search("at {<10><20><30><40>}"), (200, 100))
        >>> box.quad, box.kind, box.angle
        ((20.0, 20.0, 60.0, 20.0, 60.0, 40.0, 20.0, 40.0), 'hbb', None)
    """
    parsed = parse_response(match.group(), "geochat", frame=_GRID, image_size=size)
    if len(parsed) != 1:
        raise RecordError("bad_box", f"cannot read the GeoChat box {match.group()!r}")
    angle = match.group("angle")
    return SourceBox(
        tuple(float(v) for v in parsed.boxes[0]), parsed.kinds[0], 0, None if angle is None else float(angle)
    )


class _BenchBase(Converter):
    license: ClassVar[str] = "apache-2.0 (MBZUAI/GeoChat-Bench); AID, UCM, RSVQA and GeoChat image terms apply"
    citation: ClassVar[str] = (
        "@inproceedings{kuckreja2024geochat, title={GeoChat: Grounded Large Vision-Language Model for Remote "
        "Sensing}, author={Kuckreja, Kartik and others}, booktitle={CVPR}, year={2024}}"
    )
    _splits: ClassVar[tuple[str, ...]] = ()

    def _annotation_dir(self) -> Path:
        chosen = self.options.get("annotation_dir")
        if chosen is not None:
            return self.root / str(chosen)
        for d in _ANNOTATION_DIRS:
            if any((self.root / d / f"{s}.jsonl").is_file() for s in BENCH_FILES):
                return self.root / d
        return self.root

    def splits(self) -> list[str]:
        """The files of this converter found in the annotation folder."""
        folder = self._annotation_dir()
        return [s for s in self._splits if (folder / f"{s}.jsonl").is_file()]

    def _items(self, split: str, report: ConversionReport) -> Iterator[tuple[str, dict[str, Any]]]:
        if split not in self.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        yield from iter_jsonl(self._annotation_dir() / f"{split}.jsonl", report)

    def _image(self, split: str, name: Any, where: str, report: ConversionReport) -> Path:
        if not isinstance(name, str) or not name.strip():
            raise RecordError("missing_image", "no image path")
        chosen = (self.options.get("image_dirs") or {}).get(split)
        folders = (str(chosen),) if chosen is not None else IMAGE_DIRS[split]
        folder = next((d for d in folders if (self.root / d).is_dir()), ".")
        rel = name if folder in ("", ".") else f"{folder.rstrip('/')}/{name}"
        return resolve_image(
            self.root, rel, report=report, where=where, check=bool(self.options.get("check_images", True))
        )

    @staticmethod
    def _size(path: Path) -> tuple[int, int]:
        size = image_size(path)
        if size is None:
            raise RecordError("unreadable_image", f"{path.name}: no image size for the boxes")
        return size


def _qid(item: dict[str, Any], where: str) -> str:
    qid = item.get("question_id")
    return str(qid) if qid is not None else where


@register
class GeoChatBenchConverter(_BenchBase):
    """GeoChat-Bench classification, VQA, region captioning and grounded description."""

    name: ClassVar[str] = "geochat_bench"
    family: ClassVar[str] = "conversation"
    description: ClassVar[str] = (
        "GeoChat-Bench: scene classification (AID, UCMerced), VQA (RSVQA HRBEN, LRBEN), region captioning and "
        "grounded image description on GeoChat's evaluation images."
    )
    _splits: ClassVar[tuple[str, ...]] = tuple(s for s in BENCH_FILES if s != "referring")

    def _answers(self, split: str, report: ConversionReport) -> dict[str, str] | None:
        """RSVQA question id -> answer, from the combined answers file (``None`` if there is none)."""
        chosen = (self.options.get("answers") or {}).get(split)
        candidates = (str(chosen),) if chosen is not None else _ANSWERS[split]
        path = next((self.root / c for c in candidates if (self.root / c).is_file()), None)
        if path is None:
            return None
        data = read_json(path, report)
        items = data.get("answers") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        out: dict[str, str] = {}
        for position, a in enumerate(items):
            if not isinstance(a, dict) or a.get("active") is False or "answer" not in a:
                continue
            # linked by the answer's own question_id; RSCoVLM indexes by position, equal in the real files
            key = a.get("question_id", position)
            out.setdefault(str(key), str(a["answer"]))
        return out

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one conversation per benchmark item of ``split``."""
        answers = self._answers(split, report) if split in _ANSWERS else None
        if split in _ANSWERS and answers is None:
            note(report, split, "answers_file_missing", f"no {' or '.join(_ANSWERS[split])} under the root")
        for where, item in self._items(split, report):
            try:
                rec = self._record(split, item, where, answers, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(
        self,
        split: str,
        item: dict[str, Any],
        where: str,
        answers: dict[str, str] | None,
        report: ConversionReport,
    ) -> ConversationRecord:
        metadata: dict[str, Any] = {}
        if split in ("aid", "UCmerced"):
            image_name = item.get("image")
            if split == "aid" and isinstance(image_name, str) and not image_name.lower().endswith(".jpg"):
                # GeoChat-Bench names AID images .png; the released AID files are .jpg
                image_name = str(Path(image_name).with_suffix(".jpg").as_posix())
                report.rules["aid_image_extension"] = report.rules.get("aid_image_extension", 0) + 1
            image = self._image(split, image_name, where, report)
            raw = item.get("ground_truth")
            if not isinstance(raw, str) or not raw.strip():
                qid = item.get("question_id")
                raw = str(qid).split("/", 1)[0] if isinstance(qid, str) and "/" in qid else None
            if raw is None:
                raise RecordError("missing_field", "ground_truth")
            label = bench_class(raw, report)
            question, answer, task = str(item.get("text") or "").strip(), label, "classification"
            metadata["class"] = label
        elif split in ("hrben", "lrben"):
            image = self._image(split, item.get("image"), where, report)
            qid = item.get("question_id")
            answer_text = answers.get(str(qid)) if answers is not None and qid is not None else None
            if answer_text is None:
                raise RecordError("missing_answer", f"no RSVQA answer for question {qid!r}")
            question = apply_rules(str(item.get("text") or ""), LRS_VQA_RULES, report)
            answer, task = answer_text.strip(), "vqa"
            if item.get("category") is not None:
                metadata["category"] = item["category"]
        elif split == "region_captioning":
            image = self._image(split, f"{item.get('image_id')}.png", where, report)
            box, truth = item.get("question"), item.get("ground_truth")
            if not isinstance(box, str) or not isinstance(truth, str) or not truth.strip():
                raise RecordError("missing_field", "question (box) or ground_truth")
            question = apply_rules(f"[identify] {box.strip()}", GEOCHAT_USER_RULES, report)
            answer, task = apply_rules(truth, GEOCHAT_ASSISTANT_RULES, report), "region_caption"
        else:  # grounding_description
            image = self._image(split, item.get("image_id"), where, report)
            truth = item.get("description")
            if not isinstance(truth, str) or not truth.strip():
                raise RecordError("missing_field", "description")
            # RSCoVLM asks "Describe the image"; the [grounding] rule words it as geochat_instruct does
            question = apply_rules("[grounding] Describe the image", GEOCHAT_USER_RULES, report)
            answer, task = apply_rules(truth, GEOCHAT_ASSISTANT_RULES, report), "grounded_caption"
        if not question or not answer:
            raise RecordError("empty_turn", "no question or no answer text")
        messages = (
            Message("user", (ContentPart("image", image=0), ContentPart("text", text=question))),
            Message.text("assistant", answer),
        )
        messages, boxes = self._boxes(messages, image)
        metadata.update(boxes)
        if item.get("question_id") is not None:
            metadata["question_id"] = item["question_id"]
        key = item.get("question_id", item.get("image_id"))
        return ConversationRecord(
            id=f"{split}/{key if key is not None else where}",
            source=self.name,
            split=split,
            images=(relative(self.root, image),),
            messages=messages,
            task=task,
            metadata=json.dumps(metadata) if metadata else None,
        )

    def _boxes(self, messages: tuple[Message, ...], image: Path) -> tuple[tuple[Message, ...], dict[str, Any]]:
        """GeoChat boxes of the text -> ``<box:K>`` placeholders, the boxes in the metadata layout."""
        if not any("{<" in m.text_content for m in messages):
            return messages, {}
        size = self._size(image)
        out, boxes, owners = tokenize_boxes(messages, _GEOCHAT_BOX, lambda m: _read_geochat_box(m, size))
        return out, box_metadata(boxes, owners, [size], "geochat")


@register
class GeoChatBenchReferringConverter(_BenchBase):
    """GeoChat-Bench referring expressions (``referring.jsonl``) -> grounding records."""

    name: ClassVar[str] = "geochat_bench_referring"
    family: ClassVar[str] = "grounding"
    description: ClassVar[str] = (
        "GeoChat-Bench referring: expressions on GeoChat's evaluation images with their box (0-100 grid, "
        "optionally rotated), converted to original pixels."
    )
    _splits: ClassVar[tuple[str, ...]] = ("referring",)

    def records(self, split: str, report: ConversionReport) -> Iterator[GroundingRecord]:
        """Yield one grounding record per expression."""
        for where, item in self._items(split, report):
            try:
                rec = self._record(split, item, where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(self, split: str, item: dict[str, Any], where: str, report: ConversionReport) -> GroundingRecord:
        image_id, expression, truth = item.get("image_id"), item.get("question"), item.get("ground_truth")
        if not isinstance(image_id, str) or not image_id:
            raise RecordError("missing_field", "image_id")
        if not isinstance(expression, str) or not expression.strip():
            raise RecordError("missing_expression")
        if not isinstance(truth, str):
            raise RecordError("bad_box", f"expected a GeoChat box string, got {truth!r}"[:200])
        image = self._image(split, image_id if Path(image_id).suffix else f"{image_id}.png", where, report)
        width, height = self._size(image)
        parsed = parse_response(truth.strip(), "geochat", frame=_GRID, image_size=(width, height))
        if len(parsed) == 0:
            raise RecordError("bad_box", f"no GeoChat box in {truth.strip()[:80]!r}")
        if len(parsed) > 1:
            raise RecordError("multiple_boxes", f"{len(parsed)} boxes; a grounding record holds one")
        hbb, clipped = checked_hbb(parsed.hbb[0].tolist(), width, height)
        if clipped:
            note(report, where, "boxes_clipped", truth.strip()[:80])
        quad = tuple(float(v) for v in parsed.boxes[0]) if parsed.kinds[0] == "obb" else None
        text = apply_rules(expression, _MARKER_RULES, report)
        return GroundingRecord(
            id=f"{split}/{_qid(item, where)}",
            source=self.name,
            split=split,
            image=relative(self.root, image),
            width=width,
            height=height,
            expression=" ".join(text.split()),
            hbb=hbb,
            quad=quad,
        )
