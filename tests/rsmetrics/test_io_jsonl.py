"""JSON Lines: real sample, blank lines, bad lines in strict and lenient mode, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rsmetrics.errors import InvalidInputError, RecordError
from rsmetrics.io import ReadReport, load_jsonl, read_jsonl, write_jsonl

SAMPLES = Path(__file__).parents[2] / ".." / "shared" / "samples"


def test_real_lrs_vqa_subset() -> None:
    path = SAMPLES / "lrs_vqa" / "LRS_VQA_merged.subset.jsonl"
    if not path.is_file():
        pytest.skip(f"sample not found: {path}")
    records, report = load_jsonl(path)
    # `wc -l` and `grep -c .` both give 17 lines, all of them records
    assert len(records) == 17
    assert (report.files, report.objects, report.skipped) == (1, 17, {})
    # first line, read by eye: question FAIR_1 about a bridge, answer "yes"
    first = records[0]
    assert first["question_id"] == "FAIR_1"
    assert first["ground_truth"] == "yes"
    assert first["hbox"] == [282, 3418, 763, 4050]
    assert first["image_size"] == [4000, 4000]


def test_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": 1}\r\n\r\n   \n{"id": 2, "t": "\xc3\xa9"}\n\n')
    assert list(read_jsonl(path)) == [{"id": 1}, {"id": 2, "t": "é"}]


def test_lazy_iteration(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": 1}\nnot json\n')
    it = read_jsonl(path)
    assert next(it) == {"id": 1}  # the bad second line is only reached later
    with pytest.raises(RecordError):
        next(it)


@pytest.mark.parametrize(
    ("line", "reason", "text"),
    [
        (b'{"id": 2,}', "bad_json", "invalid JSON"),
        (b"[1, 2]", "not_object", "expected a JSON object, but got list"),
        (b'"just text"', "not_object", "but got str"),
        (b"null", "not_object", "but got NoneType"),
        (b'{"t": "\xff"}', "bad_encoding", "not valid UTF-8"),
    ],
)
def test_bad_line_strict_and_lenient(tmp_path: Path, line: bytes, reason: str, text: str) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": 1}\n\n' + line + b'\n{"id": 3}\n')
    with pytest.raises(RecordError) as info:
        list(read_jsonl(path))
    # blank line 2 still counts: the bad record is on line 3
    assert str(info.value).startswith(f"{path}:3: ")
    assert text in str(info.value)
    assert info.value.line == 3

    records, report = load_jsonl(path, strict=False)
    assert records == [{"id": 1}, {"id": 3}]
    assert report.skipped == {reason: 1}
    assert report.errors[0].startswith(f"{path}:3: ")


def test_stats_accumulate_over_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (tmp_path / "b.jsonl").write_text('{"b": 1}\n[]\n')
    report = ReadReport()
    out = [r for name in ("a", "b") for r in read_jsonl(tmp_path / f"{name}.jsonl", strict=False, stats=report)]
    assert len(out) == 3
    assert (report.files, report.objects, report.skipped) == (2, 3, {"not_object": 1})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        list(read_jsonl(tmp_path / "none.jsonl"))


def test_write_round_trip(tmp_path: Path) -> None:
    records = [{"id": 1, "text": "héllo\nworld"}, {"id": 2, "box": [1.5, 2, 3, 4]}]
    path = write_jsonl(records, tmp_path / "x" / "out.jsonl")
    assert path.read_text(encoding="utf-8").count("\n") == 2
    assert list(read_jsonl(path)) == records
    with pytest.raises(InvalidInputError, match="record 1 is list"):
        write_jsonl([{"a": 1}, [1]], path)  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="Record 0 is not JSON-serialisable"):
        write_jsonl([{"a": object()}], path)
    assert list(read_jsonl(path)) == records  # failed writes left the file as it was
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_jsonl([{"old": True}], tmp_path / "out.jsonl")

    def broken_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="killed"):
        write_jsonl([{"new": True}], path)
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
