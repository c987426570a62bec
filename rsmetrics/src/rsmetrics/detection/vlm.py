"""From VLM response text to detections: parse, map to original pixels, match labels.

Example:
    >>> from rsmetrics.parsers import Frame
    >>> records = [{"image_id": "a", "response": "10,10,20,20 Planes", "image_width": 100, "image_height": 100}]
    >>> dets, report = detections_from_responses(records, ["plane"], dialect="rscovlm_plain", frame=Frame.grid(100))
    >>> dets[0].labels, dets[0].boxes[0, :4].tolist(), report.unknown_labels
    (('plane',), [10.0, 10.0, 20.0, 10.0], {})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsmetrics.detection.types import ImageDetections
from rsmetrics.errors import InvalidInputError
from rsmetrics.labels import LabelVocabulary
from rsmetrics.parsers import Frame, parse_response

__all__ = ["ParseReport", "detections_from_responses"]


@dataclass
class ParseReport:
    """What happened to the responses: nothing is dropped without being counted here."""

    responses: int = 0
    boxes: int = 0
    empty_answers: int = 0
    truncated_responses: int = 0
    unparsed_candidates: int = 0
    responses_without_boxes: int = 0
    unknown_labels: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _record_frame(record: Mapping[str, Any], frame: Frame | None, where: str) -> Frame:
    if frame is not None:
        return frame
    try:
        return Frame.pixels(float(record["input_width"]), float(record["input_height"]))
    except KeyError:
        raise InvalidInputError(
            f"{where}: expected `input_width` and `input_height` (the model input size) or an explicit frame"
        ) from None


def detections_from_responses(
    records: Iterable[Mapping[str, Any]],
    classes: Sequence[str],
    *,
    dialect: str = "rscovlm_plain",
    frame: Frame | None = None,
    synonyms: Mapping[str, str] | None = None,
    response_key: str = "response",
) -> tuple[list[ImageDetections], ParseReport]:
    """Parse model responses into per-image detections without scores.

    Args:
        records: one mapping per image with ``image_id``, the response text under
            ``response_key``, ``image_width`` and ``image_height`` (original pixels)
            and, unless ``frame`` is given, ``input_width``/``input_height`` (the
            resized model input, RSCoVLM's coordinate frame).
        classes: the class vocabulary; labels are matched exactly after
            normalisation (case, '-', '_', spaces, plural), then through
            ``synonyms``; anything else is counted as unknown and left out.
        dialect: the response format (see :data:`rsmetrics.parsers.PARSERS`).
        frame: a fixed coordinate frame (``Frame.grid(1000)`` for Qwen2-VL);
            ``None`` reads each record's input size.
        synonyms: optional ``{synonym: class}`` table.
        response_key: the key holding the response text.

    Returns:
        The detections (one per record, in order) and a :class:`ParseReport`.
    """
    vocab = LabelVocabulary(classes, synonyms)
    unknown: Counter[str] = Counter()
    report = ParseReport()
    out: list[ImageDetections] = []
    for k, rec in enumerate(records):
        where = f"record {k}"
        try:
            image_id = str(rec["image_id"])
            size = (float(rec["image_width"]), float(rec["image_height"]))
        except KeyError as err:
            raise InvalidInputError(f"{where}: missing field {err.args[0]!r}") from None
        text = rec.get(response_key)
        parsed = parse_response(
            text if isinstance(text, str) else "", dialect, frame=_record_frame(rec, frame, where), image_size=size
        )
        report.responses += 1
        report.empty_answers += int(parsed.is_empty_answer)
        report.truncated_responses += int(parsed.truncated)
        report.unparsed_candidates += parsed.num_unparsed
        if parsed.errors and len(report.examples) < 10:
            report.examples.append(f"{image_id}: {parsed.errors[0]}")
        matched = [vocab.match(lbl, unknown) for lbl in parsed.labels]
        keep = np.array([m is not None for m in matched], bool)
        if len(parsed.boxes) == 0 and not parsed.is_empty_answer:
            report.responses_without_boxes += 1
        report.boxes += int(keep.sum())
        out.append(ImageDetections(image_id, parsed.boxes[keep], [m for m in matched if m is not None]))
    report.unknown_labels = dict(unknown)
    return out, report
