"""LLaVA-style instruction sets -> :class:`~rsformat.records.ConversationRecord` (and grounding).

Converters (dataset-formats.md §2, §3, §8-§10):

``geochat_instruct``
    GeoChat_Instruct (``GeoChat_Instruct.json`` + ``images/``). The task tags
    ``[refer]``, ``[grounding]`` and ``[identify]`` become natural-language
    prompts, ``<p>``/``</p>`` markers go, and spacing and punctuation
    artefacts are repaired: each is a named :class:`CleaningRule` counted in
    the report (:data:`GEOCHAT_USER_RULES`, :data:`GEOCHAT_ASSISTANT_RULES`).
    ``[identify]`` answers that repeat the question's box lose it
    (``repeated_input_box``, as RSCoVLM does). Every GeoChat box
    ``{<x1><y1><x2><y2>|<θ>}`` (0-100 grid, read with
    :func:`rsmetrics.parsers.parse_response` and ``Frame.grid(100)``) becomes
    a ``<box:K>`` placeholder (see below); a record with a box that cannot
    be read is skipped (``unparsed_box``).
``vrsbench`` / ``vrsbench_referring``
    The VRSBench train file (LLaVA conversations). Referring turns (answer
    ``{<x1><y1><x2><y2>}`` on the 0-100 grid) become
    :class:`~rsformat.records.GroundingRecord` (``vrsbench_referring``); the
    caption and VQA turns stay conversations (``vrsbench``), their GeoChat
    boxes, if any, placeholders as for GeoChat. A converter has one record
    family, hence two names over one reader.
``teochatlas``
    TEOChatlas: ``video`` frame lists become multi-image conversations (task
    ``"temporal"``; ``timestamp`` kept in ``metadata``); turns without
    ``from`` are dropped and counted; ``[x_min, y_min, x_max, y_max]`` boxes
    on the 0-100 grid become placeholders. TEOChat does not say which frame
    a box is on; its frames are co-registered, so every box is put on frame
    0 (``box_images`` 0) and rendered in frame 0's frame. The sizes of all
    frames are stored; frames of different sizes are counted
    (``frame_sizes_differ``) and their boxes still refer to frame 0.

Boxes never stay in the text in a source's grid (the paper's scalable boxes,
Sec. III-C2: a model sees every box in its own input frame). Each box of a
user or assistant turn is replaced by ``<box:K>``, ``K`` indexing
``metadata["boxes"]`` (:func:`~rsformat.converters._llava.tokenize_boxes`);
the metadata holds, per box, the canonical quad in original pixels
(``boxes``), how the source wrote it (``box_kinds``: ``"hbb"``, or ``"obb"``
for a GeoChat box with an angle), its image (``box_images``), its message
(``box_messages``) and the source's angle (``box_angles``, GeoChat only: a
quad does not tell ``θ`` from ``θ ± 90``), plus ``image_sizes`` and
``box_source_format`` (``"geochat"`` or ``"teochat"``). :func:`rsformat.render.render`
writes the boxes in any model frame; :func:`restore_source_text` writes the
source's text back, exactly for boxes written in integers in the source's
canonical spelling (``{<12><46><32><66>|<0>}``, ``[10, 20, 30, 40]``). Boxes
that reach outside their image (GeoChat's rotated boxes near a border) are
kept and counted (``boxes_outside_image``).
``vhm``
    VHM SFT (``list_sft.json``, image at ``<source_dataset>/<image>``) and, as
    ``eval_<name>`` splits, the VHM eval files (``datasets_eval/*.json``,
    image at ``datasets_eval/<image_path>/<image>``).
``llava_onevision``
    LLaVA-OneVision-Data parquet shards (``<config>/*.parquet``) or
    ``save_to_disk`` folders (``*.arrow``). Text-only rows and rows whose
    image ``path`` names a file under the root are converted; rows with only
    embedded image bytes are skipped (``embedded_image_not_supported``):
    writing image files is not a converter's job.

Every image path is resolved with :func:`~rsformat.converters.base.safe_join`
(paths escaping the root are skipped as ``unsafe_path``); with
``check_images`` (the default) records whose image is missing are skipped.

Example:
    >>> clean = lambda s: apply_rules(s, GEOCHAT_USER_RULES)
    >>> clean("[refer] Give me the location of <p> the small white car </p>")
    'Give me the location of the small white car'
    >>> clean("[identify] {<10><20><30><40>|<0>}")
    'What is the object present at {<10><20><30><40>|<0>}'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsformat.converters._llava import (
    RecordError,
    SourceBox,
    box_metadata,
    find_file,
    image_size,
    iter_json_items,
    llava_messages,
    note,
    relative,
    resolve_image,
    tokenize_boxes,
)
from rsformat.converters.base import CleaningRule, ConversionReport, Converter, apply_rules, register
from rsformat.converters.refgeo import checked_hbb
from rsformat.records import ConversationRecord, GroundingRecord, Message
from rsformat.render import BOX_TOKEN_PATTERN, TextBoxes
from rsmetrics.geometry import hbb_to_quad, quad_to_hbb, quad_to_obb
from rsmetrics.parsers import Frame, parse_response

__all__ = [
    "GEOCHAT_ASSISTANT_RULES",
    "GEOCHAT_USER_RULES",
    "TEOCHAT_USER_RULES",
    "GeoChatInstructConverter",
    "LlavaOneVisionConverter",
    "TeochatlasConverter",
    "VhmConverter",
    "VrsbenchConverter",
    "VrsbenchReferringConverter",
    "restore_source_text",
]

_GRID = Frame.grid(100)
_GEOCHAT_BOX = re.compile(r"\{(?:<-?\d+(?:\.\d+)?>)+(?:\|<-?\d+(?:\.\d+)?>)?\}")
_GEOCHAT_ANGLE = re.compile(r"\|<(-?\d+(?:\.\d+)?)>\}$")
_BRACKET_BOX = re.compile(r"\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")
_REFERRING_ANSWER = re.compile(r"^\{(?:<\d+>)+\}$")
_PHRASE = re.compile(r"<p>(.*?)</p>", re.DOTALL)


# --------------------------------------------------------------------------- cleaning rules


def _refer(text: str) -> str:
    m = re.match(r"^\s*\[refer\]\s*", text)
    if m is None:
        return text
    rest = text[m.end() :]
    # a bare phrase needs the sentence GeoChat's eval scripts put around it
    return f"Give me the location of {rest}" if rest.startswith("<p>") or not rest else rest


def _grounding(text: str) -> str:
    m = re.match(r"^\s*\[grounding\]\s*", text)
    if m is None:
        return text
    rest = text[m.end() :].strip().rstrip(".")
    return f"{rest or 'Describe the image'} and give the location of each object you mention."


def _identify(text: str) -> str:
    m = re.match(r"^\s*\[identify\]\s*", text)
    if m is None:
        return text
    rest = text[m.end() :]
    return f"What is the object present at {rest}" if rest.startswith("{<") else rest


def _collapse_spaces(text: str) -> str:
    return "\n".join(re.sub(r"[ \t]{2,}", " ", line).strip() for line in text.split("\n"))


_PHRASE_MARKERS = CleaningRule(
    "phrase_markers", lambda s: re.sub(r"\s*</p>", "", re.sub(r"<p>\s*", "", s)), "drop <p> and </p> markers"
)
_DOT_QUESTION = CleaningRule("dot_question_artefact", lambda s: s.replace(". ?", "."), "'. ?' -> '.' (RSCoVLM)")
# RSCoVLM writes '.' for '.. ', gluing the next word on; the space is kept here, and an
# ellipsis '...' is left alone
_DOUBLE_DOT = CleaningRule(
    "double_dot_artefact", lambda s: re.sub(r"(?<!\.)\.\.(?!\.)", ".", s), "'..' -> '.' ('...' kept)"
)
_REPEATED_PUNCT = CleaningRule(
    "repeated_punctuation", lambda s: re.sub(r"([,;:?!])\1+", r"\1", s), "',,' '??' ... -> one mark"
)
_SPACE_BEFORE_PUNCT = CleaningRule(
    "space_before_punctuation", lambda s: re.sub(r"[ \t]+([,;:?!]|\.(?!\.))", r"\1", s), "'car ?' -> 'car?'"
)
_SPACES = CleaningRule("repeated_spaces", _collapse_spaces, "runs of spaces collapsed, lines stripped")

GEOCHAT_USER_RULES: tuple[CleaningRule, ...] = (
    # artefacts first, so the tag rules see clean sentence ends
    _DOT_QUESTION,
    _DOUBLE_DOT,
    CleaningRule("refer_tag", _refer, "'[refer] <p>x</p>' -> 'Give me the location of x'"),
    CleaningRule("grounding_tag", _grounding, "'[grounding] X' -> 'X and give the location of each object ...'"),
    CleaningRule("identify_tag", _identify, "'[identify] {box}' -> 'What is the object present at {box}'"),
    _PHRASE_MARKERS,
    _REPEATED_PUNCT,
    _SPACE_BEFORE_PUNCT,
    _SPACES,
)
"""Rules applied to user turns of GeoChat-style data, in order."""

GEOCHAT_ASSISTANT_RULES: tuple[CleaningRule, ...] = (_PHRASE_MARKERS, _REPEATED_PUNCT, _DOUBLE_DOT, _SPACES)
"""Rules applied to assistant turns (boxes are left as written)."""

TEOCHAT_USER_RULES: tuple[CleaningRule, ...] = (_DOT_QUESTION, _DOUBLE_DOT, _SPACES)
"""TEOChatlas prompt artefacts (RSCoVLM ``process_teochatlas_messages``)."""


def _cleaner(
    user: tuple[CleaningRule, ...], assistant: tuple[CleaningRule, ...], report: ConversionReport
) -> Callable[[str, str], str]:
    def clean(text: str, role: str) -> str:
        rules = user if role == "user" else assistant if role == "assistant" else ()
        return apply_rules(text, rules, report)

    return clean


def _drop_repeated_boxes(turns: list[Any], pattern: re.Pattern[str], report: ConversionReport) -> list[Any]:
    """Answers repeating exactly the boxes of the question before them lose those boxes.

    In region captioning the box is the question; its echo in the answer is
    noise (RSCoVLM ``compare_box_in_two_texts`` / ``remove_box_from_text``).
    """
    out = []
    previous = ""
    for turn in turns:
        if isinstance(turn, dict) and isinstance(turn.get("value"), str):
            value = turn["value"]
            if turn.get("from") in ("human", "user"):
                previous = value
            elif turn.get("from") in ("gpt", "assistant"):
                asked = [m.group() for m in pattern.finditer(previous)]
                said = [m.group() for m in pattern.finditer(value)]
                if asked and said == asked:
                    new = _collapse_spaces(pattern.sub("", value)).strip()
                    if new:
                        report.rules["repeated_input_box"] = report.rules.get("repeated_input_box", 0) + 1
                        turn = {**turn, "value": new}
        out.append(turn)
    return out


def _geochat_tokens(
    messages: tuple[Message, ...], size: Callable[[], tuple[int, int]], where: str, report: ConversionReport
) -> tuple[tuple[Message, ...], dict[str, Any]]:
    """Every ``{<..>}`` box of the messages as a ``<box:K>`` placeholder, and its metadata."""

    def read(match: re.Match[str]) -> SourceBox:
        text = match.group()
        parsed = parse_response(text, "geochat", frame=_GRID, image_size=size())
        if len(parsed) != 1 or parsed.num_unparsed:
            raise RecordError("unparsed_box", text[:60])
        angle = _GEOCHAT_ANGLE.search(text)
        return SourceBox(
            tuple(parsed.boxes[0].tolist()), parsed.kinds[0], 0, None if angle is None else float(angle.group(1))
        )

    messages, boxes, owners = tokenize_boxes(messages, _GEOCHAT_BOX, read)
    if not boxes:
        return messages, {}
    _count_outside(boxes, [size()], where, report)
    return messages, box_metadata(boxes, owners, [size()], "geochat")


def _count_outside(
    boxes: list[SourceBox], sizes: list[tuple[int, int] | None], where: str, report: ConversionReport
) -> None:
    """Count boxes reaching more than 1 px outside their image (kept: rotated boxes may)."""
    for k, b in enumerate(boxes):
        size = sizes[b.image]
        if size is None:
            continue
        x1, y1, x2, y2 = quad_to_hbb(np.asarray(b.quad)).tolist()
        if x1 < -1 or y1 < -1 or x2 > size[0] + 1 or y2 > size[1] + 1:
            note(report, where, "boxes_outside_image", f"box {k}")


def _lazy_size(path: Path) -> Callable[[], tuple[int, int]]:
    cache: list[tuple[int, int]] = []

    def get() -> tuple[int, int]:
        if not cache:
            size = image_size(path)
            if size is None:
                raise RecordError("unreadable_image", f"{path.name}: no image size for the boxes")
            cache.append(size)
        return cache[0]

    return get


def _task_of(first_user: str) -> str:
    for tag, task in (("[refer]", "grounding"), ("[grounding]", "grounded_caption"), ("[identify]", "region_caption")):
        if tag in first_user:
            return task
    return "conversation"


def _first_user_text(conversations: Any) -> str:
    if isinstance(conversations, list):
        for turn in conversations:
            if isinstance(turn, dict) and turn.get("from") in ("human", "user") and isinstance(turn.get("value"), str):
                return turn["value"]
    return ""


class _LlavaBase(Converter):
    """A JSON array of LLaVA records with one image each."""

    family: ClassVar[str] = "conversation"
    _annotations: ClassVar[tuple[str, ...]] = ()
    _image_dirs: ClassVar[tuple[str, ...]] = (".",)

    def _annotation(self) -> Path | None:
        return find_file(self.root, self._annotations, self.options.get("annotation"))

    def _image_dir(self) -> str:
        chosen = self.options.get("images_dir")
        if chosen is not None:
            return str(chosen)
        return next((d for d in self._image_dirs if (self.root / d).is_dir()), ".")

    def _image(self, name: Any, where: str, report: ConversionReport, folder: str | None = None) -> Path:
        if not isinstance(name, str):
            raise RecordError("missing_image", "no image path")
        base = self._image_dir() if folder is None else folder
        rel = name if base in ("", ".") else f"{base.rstrip('/')}/{name}"
        return resolve_image(
            self.root, rel, report=report, where=where, check=bool(self.options.get("check_images", True))
        )

    def splits(self) -> list[str]:
        """``["train"]`` when the annotation file is found."""
        return ["train"] if self._annotation() is not None else []

    def _items(self, split: str, report: ConversionReport) -> Iterator[tuple[str, dict[str, Any]]]:
        if split not in self.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        path = self._annotation()
        if path is not None:
            yield from iter_json_items(path, report)

    def _id(self, item: dict[str, Any], where: str) -> str:
        rid = item.get("id", item.get("question_id"))
        return str(rid) if rid is not None else where


@register
class GeoChatInstructConverter(_LlavaBase):
    """GeoChat_Instruct: 318k instructions (referring, grounded captions, region captions, VQA, cls)."""

    name: ClassVar[str] = "geochat_instruct"
    description: ClassVar[str] = (
        "GeoChat_Instruct: 318k remote-sensing instructions from DOTA, DIOR, FAIR1M, NWPU-RESISC45, LRBEN, "
        "FloodNet and UCM (referring, grounded description, region captioning, VQA, scene classification)."
    )
    license: ClassVar[str] = "apache-2.0 (MBZUAI/GeoChat_Instruct); source image terms apply"
    citation: ClassVar[str] = (
        "@inproceedings{kuckreja2024geochat, title={GeoChat: Grounded Large Vision-Language Model for Remote "
        "Sensing}, author={Kuckreja, Kartik and others}, booktitle={CVPR}, year={2024}}"
    )
    _annotations: ClassVar[tuple[str, ...]] = ("GeoChat_Instruct.json",)
    _image_dirs: ClassVar[tuple[str, ...]] = ("images", "share/softwares/kartik/GeoChat_finetuning/final_images_llava")

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one cleaned conversation per record, boxes as ``<box:K>`` placeholders."""
        clean = _cleaner(GEOCHAT_USER_RULES, GEOCHAT_ASSISTANT_RULES, report)
        for where, item in self._items(split, report):
            try:
                image = self._image(item.get("image"), where, report)
                conversations = item.get("conversations")
                task = _task_of(_first_user_text(conversations))
                if isinstance(conversations, list):
                    conversations = _drop_repeated_boxes(conversations, _GEOCHAT_BOX, report)
                messages = llava_messages(conversations, 1, clean=clean, report=report, where=where)
                messages, metadata = _geochat_tokens(messages, _lazy_size(image), where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield ConversationRecord(
                id=self._id(item, where),
                source=self.name,
                split=split,
                images=(relative(self.root, image),),
                messages=messages,
                task=task,
                metadata=json.dumps(metadata) if metadata else None,
            )


# --------------------------------------------------------------------------- VRSBench


class _VrsbenchBase(_LlavaBase):
    license: ClassVar[str] = "CC-BY-4.0 annotations (xiang709/VRSBench); DOTA/DIOR images: academic use"
    citation: ClassVar[str] = (
        "@inproceedings{li2024vrsbench, title={VRSBench: A Versatile Vision-Language Benchmark Dataset for "
        "Remote Sensing Image Understanding}, author={Li, Xiang and Ding, Jian and Elhoseiny, Mohamed}, "
        "booktitle={NeurIPS Datasets and Benchmarks}, year={2024}}"
    )
    _annotations: ClassVar[tuple[str, ...]] = ("VRSBench_train.json", "RSBench_train.json", "train.json")
    _image_dirs: ClassVar[tuple[str, ...]] = ("Images", "Images_train", "images")

    @staticmethod
    def _pairs(conversations: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        if not isinstance(conversations, list) or len(conversations) % 2 or not conversations:
            raise RecordError("bad_conversations", "expected human/gpt turn pairs")
        pairs = list(zip(conversations[0::2], conversations[1::2]))
        for h, g in pairs:
            if not (isinstance(h, dict) and isinstance(g, dict)):
                raise RecordError("bad_conversations", "turn is not an object")
            if not (isinstance(h.get("value"), str) and isinstance(g.get("value"), str)):
                raise RecordError("bad_conversations", "turn value is not a string")
        return pairs

    @staticmethod
    def _is_referring(pair: tuple[dict[str, Any], dict[str, Any]]) -> bool:
        return _REFERRING_ANSWER.match(pair[1]["value"].strip()) is not None


@register
class VrsbenchConverter(_VrsbenchBase):
    """VRSBench captions and VQA (the referring turns are ``vrsbench_referring``)."""

    name: ClassVar[str] = "vrsbench"
    description: ClassVar[str] = "VRSBench: detailed captions and 123k VQA pairs on 29,614 DOTA-v2 and DIOR patches."

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one conversation of the caption and VQA turns of each record."""
        for where, item in self._items(split, report):
            try:
                image = self._image(item.get("image"), where, report)
                kept = [t for p in self._pairs(item.get("conversations")) if not self._is_referring(p) for t in p]
                if not kept:
                    report.count("referring_only_records")
                    continue
                messages = llava_messages(kept, 1, report=report, where=where, count_inserted=False)
                messages, metadata = _geochat_tokens(messages, _lazy_size(image), where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            questions = [m.text_content for m in messages if m.role == "user"]
            caption = all(re.search(r"\bdescri", q, re.IGNORECASE) for q in questions)
            report.records_out += 1
            yield ConversationRecord(
                id=self._id(item, where),
                source=self.name,
                split=split,
                images=(relative(self.root, image),),
                messages=messages,
                task="caption" if caption else "vqa",
                metadata=json.dumps(metadata) if metadata else None,
            )


@register
class VrsbenchReferringConverter(_VrsbenchBase):
    """VRSBench referring expressions (answers ``{<x1><y1><x2><y2>}`` on the 0-100 grid)."""

    name: ClassVar[str] = "vrsbench_referring"
    family: ClassVar[str] = "grounding"
    description: ClassVar[str] = "VRSBench visual grounding: 52k referring expressions on DOTA-v2 and DIOR patches."

    def records(self, split: str, report: ConversionReport) -> Iterator[GroundingRecord]:
        """Yield one grounding record per referring turn."""
        for where, item in self._items(split, report):
            try:
                image = self._image(item.get("image"), where, report)
                pairs = [p for p in self._pairs(item.get("conversations")) if self._is_referring(p)]
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            size = _lazy_size(image)
            for k, (question, answer) in enumerate(pairs):
                at = f"{where} turn {2 * k}"
                try:
                    rec = self._record(item, image, size, k, question["value"], answer["value"], split, at, report)
                except RecordError as e:
                    report.skip(at, e.reason, e.detail)
                    continue
                report.records_out += 1
                yield rec

    def _record(
        self,
        item: dict[str, Any],
        image: Path,
        size: Callable[[], tuple[int, int]],
        k: int,
        question: str,
        answer: str,
        split: str,
        where: str,
        report: ConversionReport,
    ) -> GroundingRecord:
        phrase = _PHRASE.search(question)
        text = phrase.group(1) if phrase else question.replace("<image>", "")
        expression = _collapse_spaces(text).strip()
        if not expression:
            raise RecordError("missing_expression")
        width, height = size()
        parsed = parse_response(answer.strip(), "geochat", frame=_GRID, image_size=(width, height))
        if len(parsed) != 1 or parsed.kinds[0] != "hbb":
            raise RecordError("bad_box", f"expected one {{<x1><y1><x2><y2>}} box in {answer.strip()[:60]!r}")
        hbb, clipped = checked_hbb(parsed.hbb[0].tolist(), width, height)
        if clipped:
            note(report, where, "boxes_clipped")
        return GroundingRecord(
            id=f"{self._id(item, where)}/ref{k}",
            source="vrsbench",
            split=split,
            image=relative(self.root, image),
            width=width,
            height=height,
            expression=expression,
            hbb=hbb,
        )


# --------------------------------------------------------------------------- TEOChatlas


def _bracket_tokens(
    messages: tuple[Message, ...], paths: list[Path], where: str, report: ConversionReport
) -> tuple[tuple[Message, ...], dict[str, Any]]:
    """``[x_min, y_min, x_max, y_max]`` boxes (0-100 grid, on frame 0) as placeholders, and their metadata."""
    first = _lazy_size(paths[0])

    def read(match: re.Match[str]) -> SourceBox:
        # the grid frame is rsmetrics' own mapping (x / 100 * width); ordered corners then the canonical quad
        px = _GRID.to_image(np.array([[float(v) for v in match.groups()]]), "hbb", first())
        px = np.concatenate([np.minimum(px[:, :2], px[:, 2:]), np.maximum(px[:, :2], px[:, 2:])], axis=1)
        return SourceBox(tuple(hbb_to_quad(px)[0].tolist()), "hbb", 0)

    messages, boxes, owners = tokenize_boxes(messages, _BRACKET_BOX, read)
    if not boxes:
        return messages, {}
    sizes: list[tuple[int, int] | None] = [first()]
    for path in paths[1:]:
        size = image_size(path)
        if size is None:
            raise RecordError("unreadable_image", f"{path.name}: no image size for the boxes")
        sizes.append(size)
    if len(set(sizes)) > 1:
        note(report, where, "frame_sizes_differ", ", ".join(f"{s[0]}x{s[1]}" for s in sizes if s is not None))
    _count_outside(boxes, sizes, where, report)
    return messages, box_metadata(boxes, owners, sizes, "teochat")


@register
class TeochatlasConverter(Converter):
    """TEOChatlas: temporal (multi-frame) and single-image instructions."""

    name: ClassVar[str] = "teochatlas"
    family: ClassVar[str] = "conversation"
    description: ClassVar[str] = (
        "TEOChatlas: 554k temporal earth-observation instructions (fMoW, xBD, S2Looking, QFabric change "
        "detection and reasoning) plus single-image GeoChat data."
    )
    license: ClassVar[str] = "apache-2.0 (jirvin16/TEOChatlas); source image terms apply"
    citation: ClassVar[str] = (
        "@inproceedings{irvin2025teochat, title={TEOChat: A Large Vision-Language Assistant for Temporal Earth "
        "Observation Data}, author={Irvin, Jeremy Andrew and others}, booktitle={ICLR}, year={2025}}"
    )

    def _files(self, split: str) -> list[Path]:
        if split == "train":
            return sorted((self.root / "train").glob("*.json"))
        if split.startswith("eval_"):
            path = self.root / "eval" / f"{split[5:]}.json"
            return [path] if path.is_file() else []
        return []

    def splits(self) -> list[str]:
        """``train`` and ``eval_<Name>`` for each ``eval/<Name>.json``."""
        out = ["train"] if self._files("train") else []
        return out + [f"eval_{p.stem}" for p in sorted((self.root / "eval").glob("*.json"))]

    def _frame(self, rel: Any, where: str, report: ConversionReport) -> Path:
        check = bool(self.options.get("check_images", True))
        try:
            return resolve_image(self.root, rel, report=report, where=where, check=check)
        except RecordError as e:
            # eval paths start with "TEOChatlas/": relative to the root's parent
            prefix = next(
                (p for p in ("TEOChatlas/", f"{self.root.name}/") if isinstance(rel, str) and rel.startswith(p)), None
            )
            if e.reason != "missing_image" or prefix is None:
                raise
            path = resolve_image(self.root, rel[len(prefix) :], report=report, where=where, check=check)
            report.count("root_prefix_stripped")
            return path

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one conversation per record; frames are the record's images in file order."""
        files = self._files(split)
        if not files:
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        clean = _cleaner(TEOCHAT_USER_RULES, (), report)
        for path in files:
            for where, item in iter_json_items(path, report):
                try:
                    rec = self._record(item, split, where, clean, report)
                except RecordError as e:
                    report.skip(where, e.reason, e.detail)
                    continue
                report.records_out += 1
                yield rec

    def _record(
        self,
        item: dict[str, Any],
        split: str,
        where: str,
        clean: Callable[[str, str], str],
        report: ConversionReport,
    ) -> ConversationRecord:
        frames = item.get("video", item.get("image"))
        if isinstance(frames, str):
            frames = [frames]
        if not isinstance(frames, list) or not frames:
            raise RecordError("missing_image", "no video or image")
        paths = [self._frame(f, where, report) for f in frames]
        conversations = item.get("conversations")
        if isinstance(conversations, list):
            conversations = _drop_repeated_boxes(conversations, _BRACKET_BOX, report)
        messages = llava_messages(conversations, len(paths), video=True, clean=clean, report=report, where=where)
        metadata: dict[str, Any] = {
            k: item[k] for k in ("timestamp", "task", "dataset", "polygon", "metadata") if k in item
        }
        messages, boxes = _bracket_tokens(messages, paths, where, report)
        metadata.update(boxes)
        rid = item.get("id")
        return ConversationRecord(
            id=str(rid) if rid is not None else where,
            source=self.name,
            split=split,
            images=tuple(relative(self.root, p) for p in paths),
            messages=messages,
            task="temporal" if len(paths) > 1 else "conversation",
            metadata=json.dumps(metadata) if metadata else None,
        )


# --------------------------------------------------------------------------- the source's box text


def _grid_number(value: float) -> str:
    """A grid coordinate as a source writes it: an integer when it is one (to 1e-6), else up to 6 decimals."""
    r = round(value, 6)
    if r == int(r):
        return str(int(r))
    return f"{r:.6f}".rstrip("0").rstrip(".")


def _to_grid(hbb: np.ndarray, size: tuple[int, int]) -> list[float]:
    w, h = size
    return (np.asarray(hbb, dtype=np.float64) * [100 / w, 100 / h, 100 / w, 100 / h]).tolist()


def _geochat_text(quad: tuple[float, ...], kind: str, angle: float | None, size: tuple[int, int]) -> str:
    """``{<x1><y1><x2><y2>}``, or with ``|<θ>`` for an obb: the unrotated extent, then the angle."""
    q = np.asarray(quad, dtype=np.float64)
    if kind == "hbb":
        return "{" + "".join(f"<{_grid_number(v)}>" for v in _to_grid(quad_to_hbb(q), size)) + "}"
    theta = float(angle) if angle is not None else float(quad_to_obb(q)[4])
    # undo the rotation about the centre (rsmetrics' obb convention: clockwise on screen)
    pts = q.reshape(4, 2)
    centre = pts.mean(axis=0)
    rad = np.deg2rad(theta)
    along = (pts - centre) @ np.array([np.cos(rad), np.sin(rad)])
    across = (pts - centre) @ np.array([-np.sin(rad), np.cos(rad)])
    half_w, half_h = np.ptp(along) / 2, np.ptp(across) / 2
    hbb = np.array([centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h])
    numbers = "".join(f"<{_grid_number(v)}>" for v in _to_grid(hbb, size))
    return "{" + numbers + f"|<{_grid_number(theta)}>" + "}"


def _teochat_text(quad: tuple[float, ...], kind: str, angle: float | None, size: tuple[int, int]) -> str:
    """``[x_min, y_min, x_max, y_max]`` on the 0-100 grid."""
    return "[" + ", ".join(_grid_number(v) for v in _to_grid(quad_to_hbb(np.asarray(quad)), size)) + "]"


_SOURCE_WRITERS: dict[str, Callable[[tuple[float, ...], str, float | None, tuple[int, int]], str]] = {
    "geochat": _geochat_text,
    "teochat": _teochat_text,
}


def restore_source_text(record: ConversationRecord) -> ConversationRecord:
    """``record`` with every ``<box:K>`` written back as its source wrote it (``box_source_format``).

    The inverse of the converters' placeholders, computed from the metadata
    only (quads in pixels, kinds, angles, image sizes): exact for boxes the
    source wrote in integers in its canonical spelling; other numbers come
    back to 6 decimals, spacing canonical. A record without placeholders is
    returned as it is.

    Raises:
        ValueError: for an unknown ``box_source_format``, malformed box
            metadata, or a placeholder without its box.

    Example:
        >>> from rsformat.records import Message
        >>> meta = {"boxes": [[60.48, 231.84, 161.28, 231.84, 161.28, 332.64, 60.48, 332.64]],
        ...         "box_kinds": ["obb"], "box_angles": [0.0], "image_sizes": [[504, 504]],
        ...         "box_source_format": "geochat"}
        >>> rec = ConversationRecord("r", "geochat_instruct", "train", ("a.png",),
        ...                          (Message.text("assistant", "<box:0>"),), metadata=json.dumps(meta))
        >>> restore_source_text(rec).messages[0].text_content
        '{<12><46><32><66>|<0>}'
    """
    meta = json.loads(record.metadata or "{}")
    table = TextBoxes.from_metadata(meta, len(record.images))
    if not len(table):
        if any(p.text and BOX_TOKEN_PATTERN.search(p.text) for m in record.messages for p in m.content):
            raise ValueError(f"record {record.id!r}: <box:K> placeholders but no boxes in its metadata")
        return record
    fmt = meta.get("box_source_format")
    writer = _SOURCE_WRITERS.get(fmt)
    if writer is None:
        raise ValueError(f"Expected box_source_format to be one of {sorted(_SOURCE_WRITERS)}, but got {fmt!r}")
    angles = meta.get("box_angles") or [None] * len(table)
    texts = [writer(table.quads[k], table.kinds[k], angles[k], table.size_of(k)) for k in range(len(table))]

    def source(match: re.Match[str]) -> str:
        k = int(match.group(1))
        if k >= len(texts):
            raise ValueError(f"record {record.id!r}: {match.group()} but its metadata holds {len(texts)} boxes")
        return texts[k]

    messages = tuple(
        replace(
            m,
            content=tuple(
                replace(p, text=BOX_TOKEN_PATTERN.sub(source, p.text)) if p.type == "text" and p.text else p
                for p in m.content
            ),
        )
        for m in record.messages
    )
    return replace(record, messages=messages)


# --------------------------------------------------------------------------- VHM


@register
class VhmConverter(_LlavaBase):
    """VHM SFT (``list_sft.json``) and VHM eval files."""

    name: ClassVar[str] = "vhm"
    description: ClassVar[str] = (
        "VHM instruction data (VersaD-Instruct, HnstD, VariousRS-Instruct) over DOTA, DIOR, FAIR1M, "
        "NWPU-RESISC45, RSVQA, UCM, fMoW and more; and the VHM evaluation sets."
    )
    license: ClassVar[str] = "see FitzPC/VHM_dataset_sft; source image terms apply"
    citation: ClassVar[str] = (
        "@inproceedings{pang2025vhm, title={VHM: Versatile and Honest Vision Language Model for Remote Sensing "
        "Image Analysis}, author={Pang, Chao and others}, booktitle={AAAI}, year={2025}}"
    )
    _annotations: ClassVar[tuple[str, ...]] = ("list_sft.json",)

    def splits(self) -> list[str]:
        """``train`` (``list_sft.json``) and ``eval_<name>`` per ``datasets_eval/<name>.json``."""
        out = ["train"] if self._annotation() is not None else []
        return out + [f"eval_{p.stem}" for p in sorted((self.root / "datasets_eval").glob("*.json"))]

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one conversation per record (text-only records have no image)."""
        if split not in self.splits():
            raise ValueError(f"Expected `split` to be one of {self.splits()}, but got {split!r}")
        path = self._annotation() if split == "train" else self.root / "datasets_eval" / f"{split[5:]}.json"
        if path is None:
            return
        for where, item in iter_json_items(path, report):
            try:
                if "conversations" not in item:
                    raise RecordError("unsupported_layout", "no LLaVA 'conversations'")
                images: tuple[Path, ...] = ()
                if item.get("image") is not None:
                    if split == "train":
                        folder = item.get("source_dataset")
                        if not isinstance(folder, str) or not folder:
                            raise RecordError("missing_field", "source_dataset")
                    else:
                        folder = f"datasets_eval/{item.get('image_path') or ''}".rstrip("/")
                    images = (self._image(item["image"], where, report, folder=folder),)
                messages = llava_messages(item["conversations"], len(images), report=report, where=where)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield ConversationRecord(
                id=self._id(item, where),
                source=self.name,
                split=split,
                images=tuple(relative(self.root, p) for p in images),
                messages=messages,
                task="conversation" if images else "text",
            )


# --------------------------------------------------------------------------- LLaVA-OneVision


_EXTRACTED_DIR = ".rsformat_images"


@register
class LlavaOneVisionConverter(Converter):
    """LLaVA-OneVision-Data shards: text-only rows and rows whose image is a file under the root."""

    name: ClassVar[str] = "llava_onevision"
    family: ClassVar[str] = "conversation"
    description: ClassVar[str] = "LLaVA-OneVision-Data: general-domain single-image and text-only instructions."
    license: ClassVar[str] = "apache-2.0 (lmms-lab/LLaVA-OneVision-Data); subset terms apply"
    citation: ClassVar[str] = (
        "@article{li2024llavaov, title={LLaVA-OneVision: Easy Visual Task Transfer}, author={Li, Bo and others}, "
        "journal={arXiv:2408.03326}, year={2024}}"
    )

    def splits(self) -> list[str]:
        """``["train"]`` when a parquet or arrow shard is found."""
        return ["train"] if self._files() else []

    @staticmethod
    def _batches(path: Path, report: ConversionReport) -> Iterator[list[dict[str, Any]]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if path.suffix == ".parquet":
                batches = pq.ParquetFile(path).iter_batches(batch_size=64)
            else:
                # datasets.save_to_disk writes Arrow IPC streams
                batches = iter(pa.ipc.open_stream(pa.memory_map(str(path))))
            for batch in batches:
                yield batch.to_pylist()
        except (OSError, pa.ArrowException) as e:
            report.skip(path.name, "unreadable_file", str(e)[:200])

    def _extract(self, shard: Path, row: int, data: bytes, where: str, report: ConversionReport) -> Path:
        """Write a row's embedded image bytes once, unchanged, under ``<root>/.rsformat_images/``.

        Records reference images by path, so embedded bytes become files beside the shards
        (original bytes, no re-encoding); an existing file is reused, which makes reruns cheap.
        """
        ext = ".png" if data[:4] == b"\x89PNG" else ".jpg" if data[:3] == b"\xff\xd8\xff" else ".img"
        rel_shard = relative(self.root, shard.with_suffix(""))
        target = self.root / _EXTRACTED_DIR / rel_shard / f"{row:07d}{ext}"
        if not target.exists():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            except OSError as err:
                raise RecordError("image_extract_failed", f"{where}: cannot write {target.name} ({err})") from None
            report.count("embedded_images_extracted")
        return target

    def _files(self) -> list[Path]:
        return sorted(
            p for p in [*self.root.rglob("*.parquet"), *self.root.rglob("*.arrow")] if _EXTRACTED_DIR not in p.parts
        )

    def records(self, split: str, report: ConversionReport) -> Iterator[ConversationRecord]:
        """Yield one conversation per convertible row, source ``llava_onevision/<config folder>``.

        Rows whose image is embedded (the Hub's parquet) get it extracted to a file first
        (option ``extract_images``, default true); without it such rows are skipped and
        counted (``embedded_image_not_supported``).
        """
        if split != "train":
            raise ValueError(f"Expected `split` to be 'train', but got {split!r}")
        check = bool(self.options.get("check_images", True))
        extract = bool(self.options.get("extract_images", True))
        for path in self._files():
            config = relative(self.root, path.parent)
            row_index = 0
            for rows in self._batches(path, report):
                for row in rows:
                    where = f"{relative(self.root, path)}[{row_index}]"
                    row_index += 1
                    report.records_in += 1
                    try:
                        images: tuple[Path, ...] = ()
                        cell = row.get("image")
                        if cell is not None:
                            rel = (
                                cell.get("path") if isinstance(cell, dict) else cell if isinstance(cell, str) else None
                            )
                            data = cell.get("bytes") if isinstance(cell, dict) else None
                            if data and extract:
                                images = (self._extract(path, row_index - 1, data, where, report),)
                            elif not rel:
                                raise RecordError("embedded_image_not_supported", "image bytes without a file path")
                            else:
                                try:
                                    images = (resolve_image(self.root, rel, report=report, where=where, check=check),)
                                except RecordError as e:
                                    if e.reason == "missing_image":
                                        raise RecordError("embedded_image_not_supported", str(rel)) from None
                                    raise
                        messages = llava_messages(row.get("conversations"), len(images), report=report, where=where)
                    except RecordError as e:
                        report.skip(where, e.reason, e.detail)
                        continue
                    report.records_out += 1
                    source = f"{self.name}/{config}" if config != "." else self.name
                    yield ConversationRecord(
                        id=str(row.get("id") or where),
                        source=source,
                        split=split,
                        images=tuple(relative(self.root, p) for p in images),
                        messages=messages,
                        task="general" if images else "text",
                        metadata=json.dumps({"data_source": row["data_source"]}) if row.get("data_source") else None,
                    )
