"""Check every record of a dataset folder written by :func:`rsformat.hub.write_dataset`.

:func:`validate_dataset` reads the parquet shards directly (streaming, one
batch of rows at a time) and checks:

* the schema of every shard against :func:`rsformat.features.features_for`,
  the shard files and row counts against the card info;
* every image: present (embedded bytes, or a file under the image root that
  does not escape it), decodable, and of the recorded width and height;
* boxes: finite, non-degenerate, inside the image (1 px tolerance), quads in
  the canonical vertex order of :func:`rsmetrics.geometry.canonical_quad`,
  hbb and obb consistent with the quad;
* messages: known roles, non-empty, image indices in range, tool calls valid
  JSON matching :mod:`rsformat.tools`' schemas, tool results answering an
  earlier call id; ``tools`` and ``metadata`` valid JSON;
* boxes in conversation text (:class:`rsformat.render.TextBoxes`): every
  ``<box:K>`` placeholder has its box in ``metadata["boxes"]``
  (``box_token_out_of_range``), the box keys are well formed
  (``bad_box_metadata``), each box is a usable canonical quad inside its
  image (the box checks above, with the size from ``image_sizes``), and
  ``image_sizes`` match the images (``image_size_mismatch``);
* duplicate record ids inside a config.

Problems are counted by kind with the first record ids (``config/split/id``);
:attr:`ValidationReport.exit_code` is what ``rsformat validate`` returns.

Example:
    >>> report = ValidationReport("demo")
    >>> report.add("box_outside_image", "cfg/train/a", "x2 = 120 > width 100")
    >>> report.ok, report.exit_code, report.summary()["problems"]
    (False, 1, {'box_outside_image': 1})
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from rsformat.converters.base import UnsafePathError, safe_join
from rsformat.features import features_for
from rsformat.hub import INFO_FILE, config_info, list_configs
from rsformat.records import (
    ROLES,
    ConversationRecord,
    DetectionRecord,
    GroundingRecord,
    ZoomRecord,
    record_class,
)
from rsformat.render import BOX_TOKEN_PATTERN, CROP_PREFIX, TextBoxes, parse_crop_ref
from rsformat.tools import parse_tool_calls, validate_tool_call
from rsmetrics.geometry import canonical_quad, obb_to_quad, quad_area, quad_to_hbb, quad_to_obb

__all__ = ["ValidationReport", "validate_dataset"]

_BATCH = 256


@dataclass
class ValidationReport:
    """Problems found in a dataset folder, counted by kind, with examples."""

    path: str
    records: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    max_examples: int = 20

    def add(self, kind: str, where: str, detail: str = "") -> None:
        """Count one problem of ``kind`` at ``where`` (``config/split/id`` or a file)."""
        self.problems[kind] = self.problems.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < self.max_examples:
            shown.append(f"{where}: {detail}" if detail else where)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 when the dataset is valid, 1 otherwise."""
        return 0 if self.ok else 1

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {
            "path": self.path,
            "records": self.records,
            "splits": dict(self.splits),
            "problems": dict(sorted(self.problems.items())),
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
        }

    def to_text(self) -> str:
        """A printable report."""
        lines = [f"validated {self.path}: {self.records} records in {len(self.splits)} splits"]
        if self.ok:
            lines.append("  no problems")
        for kind, n in sorted(self.problems.items()):
            lines.append(f"  {kind}: {n}")
            lines.extend(f"    {e}" for e in self.examples.get(kind, [])[:5])
        return "\n".join(lines)


@contextmanager
def _large_images() -> Iterator[None]:
    # remote-sensing images are legitimately huge; Pillow's bomb guard would reject them
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


class _Checker:
    def __init__(self, report: ValidationReport, root: Path, image_root: Path, decode: bool, tolerance: float) -> None:
        self.report, self.root, self.image_root = report, root, image_root
        self.decode, self.tol = decode, tolerance

    # ----------------------------------------------------------------- images

    def image_size(self, cell: Any, where: str) -> tuple[int, int] | None:
        """Open an image cell; its size, or None (the problem is reported)."""
        if isinstance(cell, Mapping):
            data, path = cell.get("bytes"), cell.get("path")
            if data is None:
                if not path:
                    self.report.add("missing_image", where, "no bytes and no path")
                    return None
                return self._file_size(str(path), where)
            return self._open(io.BytesIO(data), where, f"embedded {path or ''}".strip())
        if not cell:
            self.report.add("missing_image", where, "empty image path")
            return None
        return self._file_size(str(cell), where)

    def _file_size(self, path: str, where: str) -> tuple[int, int] | None:
        try:
            full = safe_join(self.image_root, path)
        except UnsafePathError as err:
            self.report.add("unsafe_path", where, str(err))
            return None
        if not full.is_file():
            self.report.add("missing_image", where, f"{path} not found under {self.image_root.as_posix()}")
            return None
        return self._open(full, where, path)

    def _open(self, source: Any, where: str, name: str) -> tuple[int, int] | None:
        try:
            with _large_images(), Image.open(source) as im:
                size = im.size
                if self.decode:
                    im.load()
        except Exception as err:  # Pillow raises many kinds for corrupt data
            self.report.add("corrupt_image", where, f"{name}: {type(err).__name__}: {err}")
            return None
        return size

    def check_size(self, size: tuple[int, int] | None, width: int, height: int, where: str) -> None:
        if size is not None and size != (width, height):
            self.report.add("image_size_mismatch", where, f"image is {size[0]}x{size[1]}, record says {width}x{height}")

    # ----------------------------------------------------------------- boxes

    def box(self, values: Sequence[float], kind: str, width: int, height: int, where: str) -> bool:
        """Checks common to every box; False if it is unusable."""
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        size = {"hbb": 4, "quad": 8, "roi": 4}[kind]
        if arr.size != size:
            self.report.add("malformed_box", where, f"{kind} has {arr.size} numbers, expected {size}")
            return False
        if not np.isfinite(arr).all():
            self.report.add("malformed_box", where, f"{kind} has a non-finite number")
            return False
        xs, ys = arr[0::2], arr[1::2]
        if xs.min() < -self.tol or ys.min() < -self.tol or xs.max() > width + self.tol or ys.max() > height + self.tol:
            self.report.add(
                "box_outside_image",
                where,
                f"{kind} {np.round(arr, 2).tolist()} outside the {width}x{height} image (tolerance {self.tol} px)",
            )
        if kind in ("hbb", "roi"):
            if not (arr[0] < arr[2] and arr[1] < arr[3]):
                self.report.add("degenerate_box", where, f"{kind} {arr.tolist()} has x1 >= x2 or y1 >= y2")
                return False
        else:
            if abs(float(quad_area(arr))) <= 1e-9:
                self.report.add("degenerate_box", where, f"quad {arr.tolist()} has no area")
                return False
            if not np.allclose(arr, canonical_quad(arr), atol=1e-6):
                self.report.add(
                    "non_canonical_quad", where, f"quad {arr.tolist()} is not clockwise from the top-most vertex"
                )
        return True

    def consistent(self, quad: Sequence[float], hbb: Sequence[float], obb: Sequence[float], where: str) -> None:
        q = np.asarray(quad, dtype=np.float64)
        scale = max(1.0, float(np.abs(q).max()))
        if len(hbb) != 4 or not np.allclose(quad_to_hbb(q), hbb, atol=1e-6 * scale + 1e-6):
            self.report.add("inconsistent_box", where, f"hbb {list(hbb)} is not the enclosing box of the quad")
            return
        if len(obb) != 5 or not np.isfinite(obb).all():
            self.report.add("inconsistent_box", where, f"obb {list(obb)} is malformed")
            return
        # compare corner sets: the obb's angle is ambiguous for squares
        a = obb_to_quad(np.asarray(obb, dtype=np.float64)).reshape(4, 2)
        b = obb_to_quad(quad_to_obb(q)).reshape(4, 2)
        best = min(np.abs(np.roll(a, k, axis=0) - b).max() for k in range(4))
        if best > 1e-3 * scale:
            self.report.add("inconsistent_box", where, f"obb {list(obb)} is not the minimum-area rectangle of the quad")

    # ----------------------------------------------------------------- records

    def detection(self, rec: DetectionRecord, where: str) -> None:
        for i, obj in enumerate(rec.objects):
            w = f"{where} object {i}"
            if not obj.category.strip():
                self.report.add("empty_text", w, "empty category")
            if obj.difficult not in (0, 1, 2):
                self.report.add("bad_flag", w, f"difficult = {obj.difficult}, expected 0, 1 or 2")
            if self.box(obj.quad, "quad", rec.width, rec.height, w):
                self.consistent(obj.quad, obj.hbb, obj.obb, w)

    def grounding(self, rec: GroundingRecord, where: str) -> None:
        if not rec.expression.strip():
            self.report.add("empty_text", where, "empty expression")
        self.box(rec.hbb, "hbb", rec.width, rec.height, where)
        if rec.quad is not None:
            self.box(rec.quad, "quad", rec.width, rec.height, where)

    def zoom(self, rec: ZoomRecord, where: str) -> None:
        if not rec.question.strip() or not rec.answer.strip():
            self.report.add("empty_text", where, "empty question or answer")
        for i, roi in enumerate(rec.rois):
            self.box(roi, "roi", rec.width, rec.height, f"{where} roi {i}")
        if rec.choices is not None:
            letters = [chr(ord("A") + i) for i in range(len(rec.choices))]
            if rec.answer.strip().strip("().") not in letters:
                self.report.add("answer_not_a_choice", where, f"answer {rec.answer!r} is not one of {letters}")

    def conversation(self, rec: ConversationRecord, row: Mapping[str, Any], where: str) -> None:
        n_images = len(rec.images)
        first_size: tuple[int, int] | None = None
        sizes: dict[int, tuple[int, int]] = {}
        for i, cell in enumerate(row.get("images") or []):
            path = cell.get("path") if isinstance(cell, Mapping) else cell
            if (
                isinstance(path, str)
                and path.startswith(CROP_PREFIX)
                and not (isinstance(cell, Mapping) and cell.get("bytes"))
            ):
                box = parse_crop_ref(path)
                if box is None or i == 0:
                    self.report.add("bad_crop_ref", where, f"image {i}: {path!r} is not crop:x1,y1,x2,y2 of image 0")
                elif first_size is not None and not (
                    0 <= box[0] < box[2] <= first_size[0] and 0 <= box[1] < box[3] <= first_size[1]
                ):
                    self.report.add("bad_crop_ref", where, f"image {i}: {path} is outside image 0 {first_size}")
                continue
            size = self.image_size(cell, f"{where} image {i}")
            if i == 0:
                first_size = size
            if size is not None:
                sizes[i] = size
        if not rec.messages:
            self.report.add("malformed_messages", where, "no messages")
        open_calls: set[str] = set()
        seen_calls: set[str] = set()
        for j, msg in enumerate(rec.messages):
            w = f"{where} message {j}"
            if msg.role not in ROLES:
                self.report.add("malformed_messages", w, f"unknown role {msg.role!r}")
            if not msg.content and not msg.tool_calls:
                self.report.add("malformed_messages", w, "empty message")
            for part in msg.content:
                if part.type == "text":
                    if part.text is None:
                        self.report.add("malformed_messages", w, "text part without text")
                    elif msg.role == "assistant":
                        for call in parse_tool_calls(part.text):
                            for problem in call.problems():
                                self.report.add("bad_tool_call", w, problem)
                elif part.type == "image":
                    if part.image is None or not 0 <= part.image < n_images:
                        self.report.add(
                            "image_index_out_of_range", w, f"image {part.image} but the record has {n_images} images"
                        )
                else:
                    self.report.add("malformed_messages", w, f"unknown content type {part.type!r}")
            if msg.tool_calls and msg.role != "assistant":
                self.report.add("malformed_messages", w, f"tool calls in a {msg.role} message")
            for call in msg.tool_calls:
                if call.id in seen_calls:
                    self.report.add("bad_tool_call", w, f"duplicate tool call id {call.id!r}")
                seen_calls.add(call.id)
                open_calls.add(call.id)
                for problem in validate_tool_call(call):
                    self.report.add("bad_tool_call", w, problem)
            if msg.role == "tool":
                if msg.tool_call_id not in open_calls:
                    self.report.add(
                        "unknown_tool_call_id", w, f"tool result for {msg.tool_call_id!r}, which no earlier call made"
                    )
                open_calls.discard(msg.tool_call_id or "")
            elif msg.tool_call_id is not None:
                self.report.add("malformed_messages", w, f"tool_call_id in a {msg.role} message")
        metadata: Any = None
        for name, text in (("tools", rec.tools), ("metadata", rec.metadata)):
            if text is None:
                continue
            try:
                value = json.loads(text)
            except ValueError as err:
                self.report.add(f"bad_{name}_json", where, str(err))
                continue
            if name == "tools" and not isinstance(value, list):
                self.report.add("bad_tools_json", where, "tools is not a JSON list")
            if name == "metadata":
                metadata = value
        self.text_boxes(rec, metadata, sizes, where)

    def text_boxes(
        self, rec: ConversationRecord, metadata: Any, sizes: Mapping[int, tuple[int, int]], where: str
    ) -> None:
        """The ``<box:K>`` placeholders of the messages against the boxes of ``metadata``."""
        try:
            table = TextBoxes.from_metadata(metadata if isinstance(metadata, Mapping) else None, len(rec.images))
        except ValueError as err:
            self.report.add("bad_box_metadata", where, str(err))
            table = None
        n = len(table) if table is not None else 0
        for j, msg in enumerate(rec.messages):
            for part in msg.content:
                for k in BOX_TOKEN_PATTERN.findall(part.text or "") if part.type == "text" else ():
                    if int(k) >= n:
                        self.report.add(
                            "box_token_out_of_range", f"{where} message {j}", f"<box:{k}> but metadata holds {n} boxes"
                        )
        if table is None:
            return
        for i, size in enumerate(table.image_sizes):
            if size is not None and i in sizes and sizes[i] != size:
                self.report.add(
                    "image_size_mismatch",
                    f"{where} image {i}",
                    f"image is {sizes[i][0]}x{sizes[i][1]}, metadata image_sizes says {size[0]}x{size[1]}",
                )
        for k, quad in enumerate(table.quads):
            width, height = table.size_of(k)
            self.box(quad, "quad", width, height, f"{where} box {k} (image {table.images[k]})")


def _schema_diff(found: Any, expected: Any) -> str:
    f = {x.name: str(x.type) for x in found}
    e = {x.name: str(x.type) for x in expected}
    missing = sorted(set(e) - set(f))
    extra = sorted(set(f) - set(e))
    changed = sorted(k for k in set(e) & set(f) if e[k] != f[k])
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    for k in changed:
        parts.append(f"{k}: {f[k]} instead of {e[k]}")
    return "; ".join(parts) or "field order differs"


def validate_dataset(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    decode_images: bool = True,
    tolerance: float = 1.0,
    max_examples: int = 20,
    progress: bool = False,
) -> ValidationReport:
    """Validate every record of every config of a dataset folder.

    Args:
        path: The folder written by :func:`rsformat.hub.write_dataset`.
        image_root: Where path-mode image paths are relative to (default: ``path``).
        decode_images: Decode every image fully (else only its header is read).
        tolerance: Pixels a box may extend past the image border.
        max_examples: Record ids kept per problem kind.
        progress: Show a progress bar.

    Returns:
        The report; ``report.ok`` when nothing is wrong.
    """
    root = Path(path)
    report = ValidationReport(root.as_posix(), max_examples=max_examples)
    configs = list_configs(root)
    if not root.is_dir() or not configs:
        report.add("not_a_dataset", root.as_posix(), f"no <config>/{INFO_FILE} found")
        return report
    if not (root / "README.md").is_file():
        report.add("missing_card", root.as_posix(), "no README.md")
    checker = _Checker(report, root, Path(image_root) if image_root is not None else root, decode_images, tolerance)
    for config in configs:
        try:
            info = config_info(root, config)
            cls = record_class(info["family"])
            expected = features_for(info["family"], embed_images=bool(info["embed_images"])).arrow_schema
        except (ValueError, KeyError, OSError) as err:
            report.add("bad_info", f"{config}/{INFO_FILE}", str(err))
            continue
        ids: set[str] = set()
        for split, meta in info.get("splits", {}).items():
            count = 0
            for name in meta.get("files", []):
                shard = root / config / name
                if not shard.is_file():
                    report.add("missing_shard", f"{config}/{name}", "listed in the card info but absent")
                    continue
                try:
                    pf = pq.ParquetFile(shard)
                except Exception as err:  # pyarrow raises ArrowInvalid and OSError alike
                    report.add("corrupt_shard", f"{config}/{name}", str(err))
                    continue
                if not pf.schema_arrow.remove_metadata().equals(expected.remove_metadata()):
                    report.add("schema", f"{config}/{name}", _schema_diff(pf.schema_arrow, expected))
                    continue
                batches: Any = pf.iter_batches(batch_size=_BATCH)
                if progress:
                    from tqdm.auto import tqdm

                    batches = tqdm(batches, desc=f"{config}/{name}", total=-(-pf.metadata.num_rows // _BATCH))
                for batch in batches:
                    for row in batch.to_pylist():
                        count += 1
                        _check_row(checker, cls, row, f"{config}/{split}", ids)
            report.records += count
            report.splits[f"{config}/{split}"] = count
            if count != meta.get("num_examples", count):
                report.add(
                    "split_count_mismatch", f"{config}/{split}", f"{count} rows, the card says {meta['num_examples']}"
                )
    return report


def _check_row(checker: _Checker, cls: type, row: dict[str, Any], where: str, ids: set[str]) -> None:
    report = checker.report
    rid = str(row.get("id"))
    w = f"{where}/{rid}"
    if rid in ids:
        report.add("duplicate_id", w, "id seen before in this config")
    ids.add(rid)
    try:
        rec = cls.from_row(row)
    except Exception as err:  # any malformed cell
        report.add("malformed_record", w, f"{type(err).__name__}: {err}")
        return
    if isinstance(rec, ConversationRecord):
        checker.conversation(rec, row, w)
        return
    if rec.width <= 0 or rec.height <= 0:
        report.add("malformed_record", w, f"image size {rec.width}x{rec.height}")
        return
    checker.check_size(checker.image_size(row.get("image"), w), rec.width, rec.height, w)
    if isinstance(rec, DetectionRecord):
        checker.detection(rec, w)
    elif isinstance(rec, GroundingRecord):
        checker.grounding(rec, w)
    elif isinstance(rec, ZoomRecord):
        checker.zoom(rec, w)
