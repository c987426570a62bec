"""JSON Lines files of model outputs: one JSON object per line.

Blank lines are ignored. A line that is not valid UTF-8, not valid JSON, or
valid JSON but not an object (``[1, 2]``, ``"text"``) is an error naming the
file and line in strict mode, and is skipped and counted in lenient mode.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out.jsonl"
    >>> _ = p.write_text('{"id": 1}\\n\\n{"id": 2}\\n')
    >>> [r["id"] for r in read_jsonl(p)]
    [1, 2]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rsmetrics.errors import InvalidInputError, RecordError
from rsmetrics.io._common import ReadReport, atomic_open, source_name
from rsmetrics.io._common import fail_or_skip as _fail

__all__ = ["load_jsonl", "read_jsonl", "write_jsonl"]


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    stats: ReadReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file, one per non-blank line, lazily.

    Args:
        path: the ``.jsonl`` file.
        strict: raise on the first bad line (default); with ``False`` skip it
            and count it in ``stats`` under ``bad_encoding``, ``bad_json`` or
            ``not_object``.
        stats: a report updated while iterating (``files`` once the file is
            opened, ``objects`` per record yielded). Use :func:`load_jsonl` to
            get the records and a fresh report in one call.

    Raises:
        RecordError: in strict mode, for a bad line (file and line named).
        InvalidInputError: if the file does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "o.jsonl"
        >>> _ = p.write_text('{"a": 1}\\nnot json\\n[2]\\n')
        >>> report = ReadReport()
        >>> list(read_jsonl(p, strict=False, stats=report)), report.skipped
        ([{'a': 1}], {'bad_json': 1, 'not_object': 1})
    """
    src = source_name(path)
    report = stats if stats is not None else ReadReport()
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"Expected an existing file, but {src!r} does not exist")
    # bytes, so that a line with bad UTF-8 gets its own line number instead of failing the file
    with file.open("rb") as fh:
        report.files += 1
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as err:
                _fail(
                    RecordError(src, line_no, f"the line is not valid UTF-8 ({err.reason})"),
                    "bad_encoding",
                    strict,
                    report,
                )
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                _fail(
                    RecordError(src, line_no, f"invalid JSON: {err.msg} (column {err.colno})"),
                    "bad_json",
                    strict,
                    report,
                )
                continue
            if not isinstance(record, dict):
                _fail(
                    RecordError(src, line_no, f"expected a JSON object, but got {type(record).__name__}"),
                    "not_object",
                    strict,
                    report,
                )
                continue
            report.objects += 1
            yield record


def load_jsonl(path: str | os.PathLike[str], *, strict: bool = True) -> tuple[list[dict[str, Any]], ReadReport]:
    """Read a whole JSONL file: the records and the :class:`ReadReport`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "o.jsonl"
        >>> _ = p.write_text('{"a": 1}\\n{"a": \\n')
        >>> records, report = load_jsonl(p, strict=False)
        >>> records, report.objects, report.skipped
        ([{'a': 1}], 1, {'bad_json': 1})
    """
    report = ReadReport()
    return list(read_jsonl(path, strict=strict, stats=report)), report


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records as JSON Lines (UTF-8, one object per line), atomically.

    Raises:
        InvalidInputError: for a record that is not a mapping or not JSON-serialisable.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "o.jsonl"
        >>> _ = write_jsonl([{"a": 1}, {"b": "é"}], p)
        >>> p.read_text(encoding="utf-8")
        '{"a": 1}\\n{"b": "é"}\\n'
    """
    with atomic_open(path, "w") as fh:
        for k, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise InvalidInputError(
                    f"Expected every record to be a mapping, but record {k} is {type(rec).__name__}"
                )
            try:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            except (TypeError, ValueError) as err:
                raise InvalidInputError(f"Record {k} is not JSON-serialisable: {err}") from None
    return Path(path)
