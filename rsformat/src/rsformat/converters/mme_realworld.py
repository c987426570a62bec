"""MME-RealWorld (its remote-sensing part by default) -> multiple-choice :class:`~rsformat.records.ZoomRecord` s.

MME-RealWorld (Zhang et al., 2024) ships one JSON array of questions (the full
set ``MME_RealWorld.json``, or the lite set), each::

    {"Question_id": "perception/remote_sensing/color/0001", "Image": "remote_sensing/xxx.png",
     "Text": "What is the color of ...?", "Answer choices": ["(A) red", ..., "(E) ..."],
     "Ground truth": "B", "Task": "Perception", "Subtask": "Remote Sensing", "Category": "color"}

RSCoVLM evaluates its remote-sensing questions (``Subtask`` "Remote Sensing";
categories color, count and position) with and without the Zoom-in Chain, on
images up to several thousand pixels. The records carry no region of interest
(the model proposes one), the choices without their ``(A)`` prefixes (the
letter is the position) and the answer letter; the image size is read from the
image header.

Options: ``annotation`` (a JSON file under the root; default the known names,
else the only ``*.json`` of the root), ``subtask`` (default ``"Remote
Sensing"``; ``null`` keeps every question), ``image_root`` (a folder under the
root that ``Image`` paths are relative to), ``check_images`` (default ``True``).

Example:
    >>> MmeRealWorldConverter.family, MmeRealWorldConverter.name
    ('zoom', 'mme_realworld')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from rsformat.converters._llava import RecordError, find_file, iter_json_items, relative, resolve_image
from rsformat.converters.base import ConversionReport, Converter, register
from rsformat.converters.lrs_vqa import mcq_choices
from rsformat.converters.refgeo import record_size
from rsformat.records import ZoomRecord

__all__ = ["MmeRealWorldConverter"]

_ANNOTATIONS = ("MME_RealWorld.json", "MME-RealWorld.json", "MME_RealWorld_Lite.json", "MME-RealWorld-Lite.json")


@register
class MmeRealWorldConverter(Converter):
    """MME-RealWorld multiple-choice questions (the remote-sensing subtask by default)."""

    name: ClassVar[str] = "mme_realworld"
    family: ClassVar[str] = "zoom"
    description: ClassVar[str] = (
        "MME-RealWorld: 29k multiple-choice questions on high-resolution real-world images; by default its "
        "remote-sensing part (color, count, position), which RSCoVLM evaluates with the Zoom-in Chain."
    )
    license: ClassVar[str] = "see yifanzhang114/MME-RealWorld; source image terms apply"
    citation: ClassVar[str] = (
        "@article{zhang2024mmerealworld, title={MME-RealWorld: Could Your Multimodal LLM Challenge "
        "High-Resolution Real-World Scenarios that are Difficult for Humans?}, author={Zhang, Yi-Fan and others}, "
        "journal={arXiv:2408.13257}, year={2024}}"
    )

    def _annotation(self) -> Path | None:
        return find_file(self.root, _ANNOTATIONS, self.options.get("annotation"), only_match="*.json")

    def splits(self) -> list[str]:
        """``["test"]`` when the question file is found."""
        return ["test"] if self._annotation() is not None else []

    def records(self, split: str, report: ConversionReport) -> Iterator[ZoomRecord]:
        """Yield one record per question of the chosen subtask."""
        if split != "test":
            raise ValueError(f"Expected `split` to be 'test', but got {split!r}")
        path = self._annotation()
        if path is None:
            return
        subtask = self.options.get("subtask", "Remote Sensing")
        for where, item in iter_json_items(path, report):
            if subtask is not None and str(item.get("Subtask", "")).strip().lower() != str(subtask).lower():
                report.skip(where, "other_subtask", str(item.get("Subtask")))
                continue
            try:
                rec = self._record(item, where, report)
            except RecordError as e:
                report.skip(where, e.reason, e.detail)
                continue
            report.records_out += 1
            yield rec

    def _record(self, item: dict[str, Any], where: str, report: ConversionReport) -> ZoomRecord:
        qid, text, image_path = item.get("Question_id"), item.get("Text"), item.get("Image")
        if not isinstance(qid, str) or not isinstance(text, str) or not text.strip():
            raise RecordError("missing_field", "Question_id or Text")
        if not isinstance(image_path, str):
            raise RecordError("missing_image", "no Image path")
        base = self.options.get("image_root") or ""
        rel = f"{base.rstrip('/')}/{image_path}" if base else image_path
        image = resolve_image(
            self.root, rel, report=report, where=where, check=bool(self.options.get("check_images", True))
        )
        width, height = record_size({}, "w", "h", image)
        choices, answer = mcq_choices(item.get("Answer choices"), item.get("Ground truth"), where, report)
        category = item.get("Category")
        return ZoomRecord(
            id=qid,
            source=f"{self.name}/{str(item.get('Subtask', 'all')).strip().lower().replace(' ', '_')}",
            split="test",
            image=relative(self.root, image),
            width=width,
            height=height,
            question=text.strip(),
            answer=answer,
            rois=(),
            choices=choices,
            category=None if category is None else str(category),
        )
