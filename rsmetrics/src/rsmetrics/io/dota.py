"""DOTA label files and DOTA Task1 submission files.

Label files (``labelTxt/P0000.txt``, one image each) hold one object per line::

    imagesource:GoogleEarth
    gsd:0.146343590398
    674 375 683 375 684 394 675 395 small-vehicle 0

``x1 y1 ... x4 y4`` are absolute pixels (integers in the original release,
floats such as ``398.0`` in split patches), then the class name and an optional
difficult flag (0 normal, 1 difficult, 2 truncated by the split tool; missing
means 0). Header lines ``key:value`` (``imagesource:``, ``gsd:``) and blank lines
are skipped; split patches have no header and may be 0-byte files.

The DOTA devkit silently drops every line with fewer than 9 tokens. Here only
blank and header lines are dropped: any other line that is not a valid object
is an error in strict mode (:class:`~rsmetrics.errors.RecordError` naming the
file and line) and is skipped and counted in lenient mode (``strict=False``).

Task1 submissions (``Task1_<class>.txt``, one class each) hold one detection
per line: ``image_id score x1 y1 ... x4 y4``.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = (tmp / "P0001.txt").write_text("gsd:0.5\\n0 0 10 0 10 5 0 5 plane 1\\n")
    >>> ann = read_dota_labels(tmp / "P0001.txt")
    >>> ann.image_id, ann.labels, ann.difficult.tolist()
    ('P0001', ('plane',), [1])
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.errors import InvalidInputError, RecordError
from rsmetrics.io._common import ReadReport, atomic_open, source_name
from rsmetrics.io._common import fail_or_skip as _fail

__all__ = [
    "DOTA_V1_0_CLASSES",
    "DOTA_V1_5_CLASSES",
    "DOTA_V2_0_CLASSES",
    "dota_classes",
    "read_class_names",
    "read_dota_label_dir",
    "read_dota_labels",
    "read_task1_dir",
    "write_task1",
]

DOTA_V1_0_CLASSES: tuple[str, ...] = (
    "plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle",
    "large-vehicle", "ship", "tennis-court", "basketball-court", "storage-tank",
    "soccer-ball-field", "roundabout", "harbor", "swimming-pool", "helicopter",
)  # fmt: skip
DOTA_V1_5_CLASSES: tuple[str, ...] = (*DOTA_V1_0_CLASSES, "container-crane")
DOTA_V2_0_CLASSES: tuple[str, ...] = (*DOTA_V1_5_CLASSES, "airport", "helipad")

_CLASSES_BY_VERSION = {"1.0": DOTA_V1_0_CLASSES, "1.5": DOTA_V1_5_CLASSES, "2.0": DOTA_V2_0_CLASSES}

# `imagesource:GoogleEarth`, `gsd:0.13`, `gsd:null`; only on lines too short to be objects
_HEADER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ -]*:")
_TASK1_PREFIX = "Task1_"
_TASK1_SUFFIX = ".txt"


def dota_classes(version: str = "1.0") -> tuple[str, ...]:
    """The class names of a DOTA version, in the devkit's order.

    Args:
        version: ``"1.0"`` (15 classes), ``"1.5"`` (16) or ``"2.0"`` (18).

    Example:
        >>> len(dota_classes("1.0")), dota_classes("2.0")[-2:]
        (15, ('airport', 'helipad'))
    """
    try:
        return _CLASSES_BY_VERSION[str(version)]
    except KeyError:
        raise InvalidInputError(
            f"Expected `version` to be one of {sorted(_CLASSES_BY_VERSION)}, but got {version!r}"
        ) from None


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Read a class list file: one name per line; blank lines and ``#`` comments are ignored.

    Raises:
        RecordError: on a duplicated name or a name containing whitespace.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "classes.txt"
        >>> _ = p.write_text("# DOTA\\nplane\\nship\\n\\n")
        >>> read_class_names(p)
        ['plane', 'ship']
    """
    src = source_name(path)
    names: list[str] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(_read_text(Path(path), src, strict=True)[0], start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if len(name.split()) != 1:
            raise RecordError(src, line_no, f"a class name must not contain whitespace, but got {name!r}")
        if name in seen:
            raise RecordError(src, line_no, f"class {name!r} is listed twice (first on line {seen[name]})")
        seen[name] = line_no
        names.append(name)
    return names


_LINE_BLOCK = 4096  # lines converted together


def _read_text(path: Path, src: str, *, strict: bool) -> tuple[list[str], set[int]]:
    """Lines of a UTF-8 text file and the 1-based numbers of lines that failed to decode.

    Strict mode raises on undecodable bytes with the line number; lenient mode
    replaces them and returns their line numbers so that the caller skips them.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"Expected an existing file, but {src!r} does not exist") from None
    try:
        text = data.decode("utf-8-sig")
        return text.splitlines(), set()
    except UnicodeDecodeError as err:
        line_no = data[: err.start].count(b"\n") + 1
        if strict:
            raise RecordError(src, line_no, f"the bytes are not valid UTF-8 ({err.reason})") from None
    text = data.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    bad = {i for i, line in enumerate(lines, start=1) if "\ufffd" in line}
    return lines, bad


def _to_float(tokens: list[str]) -> NDArray[np.float64] | None:
    """Tokens as float64, or ``None`` if one is not a finite number."""
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def _bad_float_token(tokens: Sequence[str]) -> str:
    for tok in tokens:
        if _to_float([tok]) is None:
            return tok
    return tokens[0]  # not reached: some token failed as a whole


def _parse_int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def read_dota_labels(
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    stats: ReadReport | None = None,
) -> ImageAnnotations:
    """Read one DOTA label file.

    Args:
        path: the ``.txt`` file; the image id is its stem (``P0001__1024__0___512``
            for a patch).
        strict: raise on the first malformed object line (default); with
            ``False`` skip such lines and count them in ``stats``.
        stats: a report to add this file's counts to (files, objects, skipped).

    Returns:
        The objects as quads in the file's vertex order, with their class names and difficult flags.

    Raises:
        RecordError: in strict mode, for a line that is neither blank, a header
            nor ``x1 y1 ... y4 category [difficult]`` with numeric coordinates and
            an integer flag; the message names the file and line.
        InvalidInputError: if the file does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "P0002.txt"
        >>> _ = p.write_text("1 1 9 1 9 4 1 4 ship\\n")
        >>> read_dota_labels(p).boxes.tolist()
        [[1.0, 1.0, 9.0, 1.0, 9.0, 4.0, 1.0, 4.0]]
    """
    path = Path(path)
    src = source_name(path)
    lines, undecodable = _read_text(path, src, strict=strict)

    rows: list[list[str]] = []
    row_lines: list[int] = []
    for line_no, line in enumerate(lines, start=1):
        tokens = line.split()
        n = len(tokens)
        if n == 10 or n == 9:
            rows.append(tokens)
            row_lines.append(line_no)
        elif n == 0 or (n < 9 and _HEADER.match(line.lstrip())):
            continue
        else:
            message = f"expected 9 or 10 tokens (x1 y1 ... x4 y4 category [difficult]), but got {n}"
            _fail(RecordError(src, line_no, message), "token_count", strict, stats)
    if undecodable:
        keep = [i for i, ln in enumerate(row_lines) if ln not in undecodable]
        for ln in sorted(undecodable.intersection(row_lines)):
            _fail(RecordError(src, ln, "the line is not valid UTF-8"), "bad_encoding", strict, stats)
        rows = [rows[i] for i in keep]
        row_lines = [row_lines[i] for i in keep]

    coords, difficult, ok = _convert_rows(rows, row_lines, src, strict, stats)
    # interned: a handful of class names shared by every object instead of one string each
    labels = [sys.intern(rows[i][8]) for i in np.flatnonzero(ok)] if not ok.all() else [sys.intern(r[8]) for r in rows]
    if stats is not None:
        stats.files += 1
        stats.objects += len(labels)
    return ImageAnnotations(path.stem, boxes=coords, labels=labels, difficult=difficult, box_kind="quad")


def _convert_rows(
    rows: list[list[str]], row_lines: list[int], src: str, strict: bool, report: ReadReport | None
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """Coordinates ``(M, 8)``, difficult flags ``(M,)`` and the mask of valid rows.

    The whole file is converted by numpy in one call; only if that fails are the
    rows checked one by one to find (and report or skip) the bad ones.
    """
    n = len(rows)
    if n == 0:
        return np.zeros((0, 8)), np.zeros(0, np.int64), np.ones(0, bool)
    coords = _to_float([tok for r in rows for tok in r[:8]])
    flags_txt = [r[9] if len(r) == 10 else "0" for r in rows]
    try:
        flags = np.array(flags_txt, dtype=np.int64)
        # numpy would accept `+1` or ` 1`; int() is the reference rule, and it agrees on those
    except (ValueError, OverflowError):
        flags = None
    if coords is not None and flags is not None:
        return coords.reshape(n, 8), flags, np.ones(n, bool)

    ok = np.ones(n, bool)
    out = np.zeros((n, 8))
    out_flags = np.zeros(n, np.int64)
    for i, (r, line_no) in enumerate(zip(rows, row_lines, strict=True)):
        values = _to_float(r[:8])
        if values is None:
            tok = _bad_float_token(r[:8])
            _fail(RecordError(src, line_no, f"coordinate {tok!r} is not a finite number"), "bad_number", strict, report)
            ok[i] = False
            continue
        flag = _parse_int(flags_txt[i])
        if flag is None:
            _fail(
                RecordError(src, line_no, f"difficult flag {flags_txt[i]!r} is not an integer"),
                "bad_difficult",
                strict,
                report,
            )
            ok[i] = False
            continue
        out[i] = values
        out_flags[i] = flag
    return out[ok], out_flags[ok], ok


def read_dota_label_dir(
    directory: str | os.PathLike[str],
    *,
    strict: bool = True,
    pattern: str = "*.txt",
) -> tuple[list[ImageAnnotations], ReadReport]:
    """Read every DOTA label file of a directory (not recursive), sorted by file name.

    Args:
        directory: e.g. ``train/labelTxt`` or a split's ``annfiles``.
        strict: raise on the first malformed line (default) or skip and count.
        pattern: glob of the label files.

    Returns:
        One :class:`ImageAnnotations` per file (empty files give empty ones) and
        the :class:`ReadReport`.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "A.txt").write_text("0 0 4 0 4 4 0 4 ship 0\\nbad line\\n")
        >>> _ = (d / "B.txt").write_text("")
        >>> anns, report = read_dota_label_dir(d, strict=False)
        >>> [len(a) for a in anns], report.files, report.objects, report.skipped
        ([1, 0], 2, 1, {'token_count': 1})
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInputError(f"Expected `directory` to be an existing directory, but got {os.fspath(directory)!r}")
    report = ReadReport()
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    return [read_dota_labels(p, strict=strict, stats=report) for p in files], report


# --------------------------------------------------------------------------- Task1


def _task1_class(path: Path) -> str | None:
    name = path.name
    if name.startswith(_TASK1_PREFIX) and name.endswith(_TASK1_SUFFIX) and len(name) > len(_TASK1_PREFIX) + 4:
        return name[len(_TASK1_PREFIX) : -len(_TASK1_SUFFIX)]
    return None


def _read_task1_file(
    path: Path, strict: bool, report: ReadReport
) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64]]:
    """Image ids, scores ``(M,)`` and quads ``(M, 8)`` of one Task1 file.

    Lines are converted in blocks: a token is a Python string of ~50 bytes, so a
    whole class file of tokens at once would cost far more memory than its numbers.
    """
    src = source_name(path)
    lines, undecodable = _read_text(path, src, strict=strict)
    ids: list[str] = []
    blocks: list[NDArray[np.float64]] = []
    for start in range(0, len(lines), _LINE_BLOCK):
        block_ids, values = _task1_block(lines, start, undecodable, src, strict, report)
        ids.extend(block_ids)
        blocks.append(values)
    values = np.concatenate(blocks) if blocks else np.zeros((0, 9))
    report.files += 1
    report.objects += len(ids)
    return ids, values[:, 0], values[:, 1:]


def _task1_block(
    lines: list[str], start: int, undecodable: set[int], src: str, strict: bool, report: ReadReport
) -> tuple[list[str], NDArray[np.float64]]:
    rows: list[list[str]] = []
    row_lines: list[int] = []
    for line_no, line in enumerate(lines[start : start + _LINE_BLOCK], start=start + 1):
        tokens = line.split()
        if len(tokens) == 10:
            if line_no in undecodable:
                _fail(RecordError(src, line_no, "the line is not valid UTF-8"), "bad_encoding", strict, report)
                continue
            rows.append(tokens)
            row_lines.append(line_no)
        elif tokens:
            message = f"expected 10 tokens (image_id score x1 y1 ... x4 y4), but got {len(tokens)}"
            _fail(RecordError(src, line_no, message), "token_count", strict, report)
    n = len(rows)
    values = _to_float([tok for r in rows for tok in r[1:]]) if n else np.zeros(0)
    if values is None:
        ok = np.ones(n, bool)
        values_rows = np.zeros((n, 9))
        for i, (r, line_no) in enumerate(zip(rows, row_lines, strict=True)):
            v = _to_float(r[1:])
            if v is None:
                tok = _bad_float_token(r[1:])
                what = "score" if tok == r[1] and _to_float([r[1]]) is None else "coordinate"
                reason = "bad_score" if what == "score" else "bad_number"
                _fail(RecordError(src, line_no, f"{what} {tok!r} is not a finite number"), reason, strict, report)
                ok[i] = False
            else:
                values_rows[i] = v
        rows = [r for r, good in zip(rows, ok, strict=True) if good]
        values = values_rows[ok]
    return [r[0] for r in rows], values.reshape(len(rows), 9)


def read_task1_dir(
    directory: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    strict: bool = True,
) -> tuple[list[ImageDetections], ReadReport]:
    """Read a DOTA Task1 submission: one ``Task1_<class>.txt`` per class.

    Detections are grouped by image id across the class files. The images come
    in order of first appearance (class files in ``classes`` order, then line
    order), and the detections of an image in class order then line order:
    this order is the tie order of equal scores downstream.

    Args:
        directory: the folder holding the ``Task1_*.txt`` files.
        classes: the class names to read. ``None`` reads every ``Task1_*.txt``
            file, classes sorted by name. A listed class without a file has no
            detections and is recorded in ``report.missing_files`` (the devkit
            crashes instead).
        strict: raise on the first malformed line (default) or skip and count.

    Returns:
        One :class:`ImageDetections` per image with at least one detection, and
        the :class:`ReadReport`. Images without detections are absent.

    Raises:
        RecordError: in strict mode, for a line that is not
            ``image_id score x1 y1 ... x4 y4`` with finite numbers.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "Task1_ship.txt").write_text("P1 0.9 0 0 4 0 4 4 0 4\\n")
        >>> dets, report = read_task1_dir(d)
        >>> dets[0].image_id, dets[0].labels, dets[0].scores.tolist()
        ('P1', ('ship',), [0.9])
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInputError(f"Expected `directory` to be an existing directory, but got {os.fspath(directory)!r}")
    if classes is None:
        found = {c: p for p in root.glob(f"{_TASK1_PREFIX}*{_TASK1_SUFFIX}") if (c := _task1_class(p)) is not None}
        class_files = [(c, found[c]) for c in sorted(found)]
    else:
        class_files = [(str(c), root / f"{_TASK1_PREFIX}{c}{_TASK1_SUFFIX}") for c in classes]

    report = ReadReport()
    # image id -> index in order of first appearance; ints instead of 40k id strings per call
    index: dict[str, int] = {}
    image_of: list[NDArray[np.intp]] = []
    cls_of: list[NDArray[np.intp]] = []
    scores_of: list[NDArray[np.float64]] = []
    quads_of: list[NDArray[np.float64]] = []
    names: list[str] = []
    for cls, path in class_files:
        if not path.is_file():
            report.missing_files.append(source_name(path))
            continue
        file_ids, scores, quads = _read_task1_file(path, strict, report)
        image_of.append(np.fromiter((index.setdefault(i, len(index)) for i in file_ids), np.intp, len(file_ids)))
        cls_of.append(np.full(len(file_ids), len(names), np.intp))
        scores_of.append(scores)
        quads_of.append(quads)
        names.append(cls)
    if not index:
        return [], report
    # one stable sort groups every detection by image (images in order of first appearance),
    # inside an image in class-file order then line order
    image = np.concatenate(image_of)
    order = np.argsort(image, kind="stable")
    bounds = np.cumsum(np.bincount(image, minlength=len(index)))[:-1]
    out = [
        ImageDetections(image_id, boxes=quads, labels=[names[c] for c in classes_idx], scores=scores, box_kind="quad")
        for image_id, quads, scores, classes_idx in zip(
            index,
            np.split(np.concatenate(quads_of)[order], bounds),
            np.split(np.concatenate(scores_of)[order], bounds),
            np.split(np.concatenate(cls_of)[order], bounds),
            strict=True,
        )
    ]
    return out, report


def _format_number(decimals: int | None) -> str:
    # None: shortest repr that round-trips (e.g. 0.95, not 0.9500000000000001)
    return "{!r}" if decimals is None else f"{{:.{int(decimals)}f}}"


def write_task1(
    detections: Iterable[ImageDetections],
    out_dir: str | os.PathLike[str],
    classes: Sequence[str],
    *,
    score_decimals: int | None = None,
    coord_decimals: int | None = 2,
) -> list[Path]:
    """Write DOTA Task1 submission files, one ``Task1_<class>.txt`` per class.

    Every class in ``classes`` gets a file, empty if it has no detections (the
    devkit and the evaluation server expect all of them). Each file is written
    atomically: to a temporary file in ``out_dir``, then renamed over the old one.
    Lines are ``image_id score x1 y1 ... x4 y4`` with the boxes as stored
    (quads in their stored vertex order), in the order of ``detections`` then of each image's boxes.

    Args:
        detections: per-image predictions; boxes must be in the image's pixels.
        out_dir: created if missing.
        classes: all class names; a label outside this list is an error.
        score_decimals: digits after the point for scores, or ``None`` for the
            shortest exact form. Missing scores (``scores=None``) are written as 1.
        coord_decimals: digits after the point for coordinates (2, like mmrotate),
            or ``None`` for the shortest exact form.

    Returns:
        The paths written, in ``classes`` order.

    Raises:
        InvalidInputError: for a label not in ``classes``, an image id containing
            whitespace, or a non-finite coordinate or score.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> det = ImageDetections("P1", boxes=[[0, 0, 4, 4]], labels=["ship"], box_kind="hbb")
        >>> paths = write_task1([det], d, ["plane", "ship"])
        >>> [p.read_text() for p in paths]
        ['', 'P1 1.0 0.00 0.00 4.00 0.00 4.00 4.00 0.00 4.00\\n']
    """
    class_list = [str(c) for c in classes]
    if len(set(class_list)) != len(class_list):
        raise InvalidInputError(f"Expected `classes` without duplicates, but got {class_list}")
    index = {c: i for i, c in enumerate(class_list)}
    score_fmt = _format_number(score_decimals)
    line_fmt = "{} " + score_fmt + " " + " ".join([_format_number(coord_decimals)] * 8) + "\n"
    per_class: list[list[str]] = [[] for _ in class_list]
    for det in detections:
        if not det.image_id or len(det.image_id.split()) != 1 or det.image_id != det.image_id.strip():
            raise InvalidInputError(f"Expected image ids without whitespace, but got {det.image_id!r}")
        if len(det) == 0:
            continue
        scores = np.ones(len(det)) if det.scores is None else det.scores
        if not (np.isfinite(det.boxes).all() and np.isfinite(scores).all()):
            raise InvalidInputError(f"Expected finite boxes and scores, but image {det.image_id!r} has NaN or inf")
        for label, score, box in zip(det.labels, scores.tolist(), det.boxes.tolist(), strict=True):
            k = index.get(label)
            if k is None:
                raise InvalidInputError(
                    f"Expected every label to be one of `classes`, but got {label!r} in image {det.image_id!r}"
                )
            per_class[k].append(line_fmt.format(det.image_id, score, *box))

    out = Path(out_dir)
    paths = []
    for cls, lines in zip(class_list, per_class, strict=True):
        path = out / f"{_TASK1_PREFIX}{cls}{_TASK1_SUFFIX}"
        with atomic_open(path, "w") as fh:
            fh.writelines(lines)
        paths.append(path)
    return paths
