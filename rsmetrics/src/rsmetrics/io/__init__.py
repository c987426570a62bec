"""Readers and writers: DOTA labels and Task1 submissions, COCO JSON, JSON Lines.

Rules shared by every reader:

* ``strict=True`` (default) raises :class:`~rsmetrics.errors.RecordError` on the
  first malformed record, naming the file and line; ``strict=False`` skips it
  and counts it, by reason, in a :class:`ReadReport` (with the first few
  messages).
* Paths are ``str`` or ``os.PathLike``; text is UTF-8 (a BOM is ignored).

Every writer creates the parent folders and writes atomically: into a temporary
file in the target's folder, renamed over the target only once complete, so a
run killed mid-write leaves the previous file intact.

Example:
    >>> from rsmetrics.io import dota_classes
    >>> dota_classes("1.0")[:2]
    ('plane', 'baseball-diamond')
"""

from rsmetrics.io._common import ReadReport
from rsmetrics.io.coco import (
    CocoIndex,
    coco_index,
    read_coco_ground_truth,
    read_coco_results,
    write_coco_ground_truth,
    write_coco_results,
)
from rsmetrics.io.dota import (
    DOTA_V1_0_CLASSES,
    DOTA_V1_5_CLASSES,
    DOTA_V2_0_CLASSES,
    dota_classes,
    read_class_names,
    read_dota_label_dir,
    read_dota_labels,
    read_task1_dir,
    write_task1,
)
from rsmetrics.io.jsonl import load_jsonl, read_jsonl, write_jsonl

__all__ = [
    "DOTA_V1_0_CLASSES",
    "DOTA_V1_5_CLASSES",
    "DOTA_V2_0_CLASSES",
    "CocoIndex",
    "ReadReport",
    "coco_index",
    "dota_classes",
    "load_jsonl",
    "read_class_names",
    "read_coco_ground_truth",
    "read_coco_results",
    "read_dota_label_dir",
    "read_dota_labels",
    "read_jsonl",
    "read_task1_dir",
    "write_coco_ground_truth",
    "write_coco_results",
    "write_jsonl",
    "write_task1",
]
