"""DOTA label files and Task1 submissions: real samples, malformed lines, round trips, atomicity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rsmetrics.detection.types import ImageDetections
from rsmetrics.errors import InvalidInputError, RecordError, RSMetricsError
from rsmetrics.geometry import canonical_quad
from rsmetrics.io import (
    DOTA_V1_0_CLASSES,
    ReadReport,
    dota_classes,
    read_class_names,
    read_dota_label_dir,
    read_dota_labels,
    read_task1_dir,
    write_task1,
)

SAMPLES = Path(__file__).parents[2] / ".." / "shared" / "samples"
DOTA = SAMPLES / "dota"


@pytest.fixture
def dota() -> Path:
    if not DOTA.is_dir():
        pytest.skip(f"DOTA samples not found at {DOTA}")
    return DOTA


# ----------------------------------------------------------------- real label files

# Object counts: `tr -d '\r' < FILE | awk 'NF>=9' | wc -l`; difficult != 0:
# `awk 'NF==10 && $10!=0'`; the first class from `head -3`. Checked by hand on the samples.
REAL_FILES = [
    # (relative path, objects, difficult objects, first object's class)
    ("P0770.txt", 22, 0, "ground-track-field"),
    ("P1888.txt", 64, 0, "small-vehicle"),
    ("P2598.txt", 26, 0, "small-vehicle"),
    ("split_ss_1024/P0004__1__0___0.txt", 4, 1, "plane"),
    ("split_ss_1024/P0004__1__0___1024.txt", 0, 0, None),  # 0 bytes
    ("split_ss_1024/P2805__1024__0___0.txt", 4, 0, "plane"),
    ("torchgeo_fake/P0000_v1.0_empty.txt", 0, 0, None),  # header lines only
    ("torchgeo_fake/P0001_v1.0.txt", 2, 0, "plane"),
    ("torchgeo_fake/P0001_v1.5.txt", 2, 0, "plane"),
    ("torchgeo_fake/P0001_v2.0.txt", 2, 0, "plane"),
]


@pytest.mark.parametrize(("rel", "n", "n_difficult", "first_class"), REAL_FILES)
def test_real_sample_counts(dota: Path, rel: str, n: int, n_difficult: int, first_class: str | None) -> None:
    report = ReadReport()
    ann = read_dota_labels(dota / rel, stats=report)
    assert ann.image_id == Path(rel).stem
    assert len(ann) == n
    assert ann.boxes.shape == (n, 8)
    assert int(np.count_nonzero(ann.difficult)) == n_difficult
    if first_class is not None:
        assert ann.labels[0] == first_class
    assert (report.files, report.objects, report.skipped) == (1, n, {})


def test_real_sample_class_counts(dota: Path) -> None:
    # `awk 'NF>=9{print $9}' P0770.txt | sort | uniq -c`
    ann = read_dota_labels(dota / "P0770.txt")
    counts = {c: ann.labels.count(c) for c in set(ann.labels)}
    assert counts == {"baseball-diamond": 2, "ground-track-field": 1, "swimming-pool": 9, "tennis-court": 10}


def test_real_first_line_coordinates(dota: Path) -> None:
    # P0770 (CRLF file): `856 696 1469 1008 1341 1298 716 988 ground-track-field 0` is already
    # clockwise from its top-most vertex, so the canonical quad is the line itself
    ann = read_dota_labels(dota / "P0770.txt")
    assert ann.boxes[0].tolist() == [856, 696, 1469, 1008, 1341, 1298, 716, 988]
    # P1888: `674 375 683 375 684 394 675 395 small-vehicle 0` (tie on top y: left-most first)
    assert read_dota_labels(dota / "P1888.txt").boxes[0].tolist() == [674, 375, 683, 375, 684, 394, 675, 395]


def test_float_coordinates_and_difficult_flag(dota: Path) -> None:
    ann = read_dota_labels(dota / "split_ss_1024" / "P0004__1__0___0.txt")
    # line 1 `398.0 716.0 398.0 694.0 464.0 698.0 465.0 718.0 plane 0`: kept in the file's
    # vertex order (DOTA's first point marks the object's head); canonical_quad starts at (398, 694)
    assert ann.boxes[0].tolist() == [398.0, 716.0, 398.0, 694.0, 464.0, 698.0, 465.0, 718.0]
    assert canonical_quad(ann.boxes[0]).tolist() == [398.0, 694.0, 464.0, 698.0, 465.0, 718.0, 398.0, 716.0]
    # line 3 is the only `plane 1`
    assert ann.difficult.tolist() == [0, 0, 1, 0]
    assert ann.difficult.dtype == np.int64


def test_torchgeo_versions_agree(dota: Path) -> None:
    anns = [read_dota_labels(dota / "torchgeo_fake" / f"P0001_v{v}.txt") for v in ("1.0", "1.5", "2.0")]
    for ann in anns[1:]:
        np.testing.assert_array_equal(ann.boxes, anns[0].boxes)
        assert ann.labels == ("plane", "ship")
    # `10.0 10.0 20.0 12.0 18.0 20.0 8.0 18.0 plane 0`
    assert anns[0].boxes[0].tolist() == [10.0, 10.0, 20.0, 12.0, 18.0, 20.0, 8.0, 18.0]


def test_read_dir_split_samples(dota: Path) -> None:
    anns, report = read_dota_label_dir(dota / "split_ss_1024")
    # the folder also holds PNGs; only the 3 .txt files are read, sorted by name
    assert [a.image_id for a in anns] == ["P0004__1__0___0", "P0004__1__0___1024", "P2805__1024__0___0"]
    assert [len(a) for a in anns] == [4, 0, 4]
    assert (report.files, report.objects, report.n_skipped, report.errors) == (3, 8, 0, [])


def test_read_dir_torchgeo(dota: Path) -> None:
    anns, report = read_dota_label_dir(dota / "torchgeo_fake")
    assert [len(a) for a in anns] == [0, 2, 2, 2]
    assert report.objects == 6


def test_read_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="existing directory"):
        read_dota_label_dir(tmp_path / "nope")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_dota_labels(tmp_path / "nope.txt")


# ----------------------------------------------------------------- malformed lines

GOOD = "0 0 10 0 10 10 0 10 plane 0"


@pytest.mark.parametrize(
    ("bad", "reason", "text"),
    [
        ("0 0 10 0 1x0 10 0 10 plane 0", "bad_number", "coordinate '1x0' is not a finite number"),
        ("0 0 10 0 10 10 plane", "token_count", "expected 9 or 10 tokens"),  # 7 tokens
        ("0 0 10 0 10 10 0 10 plane 1.5", "bad_difficult", "difficult flag '1.5' is not an integer"),
        ("0 0 10 0 10 10 0 10 plane 0 extra", "token_count", "but got 11"),
        ("0 0 10 0 10 nan 0 10 plane 0", "bad_number", "'nan' is not a finite number"),
        ("plane", "token_count", "but got 1"),
    ],
)
def test_malformed_line_strict_and_lenient(tmp_path: Path, bad: str, reason: str, text: str) -> None:
    path = tmp_path / "P9.txt"
    path.write_text(f"imagesource:GoogleEarth\ngsd:null\n{GOOD}\n{bad}\n{GOOD.replace('plane', 'ship')}\n")
    with pytest.raises(RecordError) as info:
        read_dota_labels(path)
    assert str(info.value).startswith(f"{path}:4: ")
    assert text in str(info.value)
    assert (info.value.source, info.value.line) == (str(path), 4)
    assert isinstance(info.value, RSMetricsError)

    report = ReadReport()
    ann = read_dota_labels(path, strict=False, stats=report)
    assert ann.labels == ("plane", "ship")
    assert report.skipped == {reason: 1}
    assert report.objects == 2
    assert len(report.errors) == 1 and report.errors[0].startswith(f"{path}:4: ")


def test_lenient_counts_several_reasons(tmp_path: Path) -> None:
    path = tmp_path / "P8.txt"
    lines = [GOOD, "1 2 3", "0 0 10 0 10 10 0 x plane 0", "0 0 10 0 10 10 0 10 plane one", "", "   ", GOOD]
    path.write_text("\r\n".join(lines) + "\r\n")
    report = ReadReport()
    ann = read_dota_labels(path, strict=False, stats=report)
    assert len(ann) == 2
    assert report.skipped == {"token_count": 1, "bad_number": 1, "bad_difficult": 1}
    assert [e.split(": ")[0] for e in report.errors] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_blank_lines_and_headers_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "P7.txt"
    path.write_text(f"\n{GOOD}\n\ngsd:0.5\n{GOOD} \n")
    assert len(read_dota_labels(path)) == 2


def test_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "P6.txt"
    path.write_bytes(f"{GOOD}\n".encode() + b"0 0 10 0 10 10 0 10 pl\xffne 0\n" + f"{GOOD}\n".encode())
    with pytest.raises(RecordError, match=r"P6\.txt:2: .*UTF-8"):
        read_dota_labels(path)
    report = ReadReport()
    assert len(read_dota_labels(path, strict=False, stats=report)) == 2
    assert report.skipped == {"bad_encoding": 1}


def test_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "P5.txt"
    path.write_bytes(b"\xef\xbb\xbfimagesource:x\n" + GOOD.encode())
    assert read_dota_labels(path).labels == ("plane",)


def test_read_dir_lenient_report(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{GOOD}\n1 2\n")
    (tmp_path / "b.txt").write_text(f"{GOOD}\n{GOOD}\n0 0 1 0 1 1 0 1 car q\n")
    (tmp_path / "notes.md").write_text("ignored")
    anns, report = read_dota_label_dir(tmp_path, strict=False)
    assert [a.image_id for a in anns] == ["a", "b"]
    assert (report.files, report.objects, report.skipped) == (2, 3, {"token_count": 1, "bad_difficult": 1})
    with pytest.raises(RecordError, match=r"a\.txt:2"):
        read_dota_label_dir(tmp_path)


def test_many_objects_fast_path_matches_slow_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    coords = rng.integers(0, 4000, size=(500, 8)).astype(float) + 0.5
    flags = rng.integers(0, 3, size=500)
    lines = [" ".join(f"{v}" for v in c) + f" ship {f}" for c, f in zip(coords, flags, strict=True)]
    good = tmp_path / "good.txt"
    good.write_text("\n".join(lines))
    # one bad line at the end forces the row-by-row path in lenient mode
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join([*lines, "1 2 3 4 5 6 7 z ship 0"]))
    a = read_dota_labels(good)
    b = read_dota_labels(bad, strict=False)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.difficult, flags)
    np.testing.assert_array_equal(b.difficult, flags)


# ----------------------------------------------------------------- class lists


def test_dota_classes() -> None:
    assert len(dota_classes()) == 15 and dota_classes("1.0") == DOTA_V1_0_CLASSES
    assert dota_classes("1.5")[-1] == "container-crane"
    assert dota_classes("2.0")[-2:] == ("airport", "helipad")
    with pytest.raises(InvalidInputError, match="Expected `version` to be one of"):
        dota_classes("3.0")


def test_read_class_names(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("# comment\nplane\n\nship\n")
    assert read_class_names(path) == ["plane", "ship"]
    path.write_text("plane\nship\nplane\n")
    with pytest.raises(RecordError, match=r"classes\.txt:3: .*first on line 1"):
        read_class_names(path)


# ----------------------------------------------------------------- Task1


def _dets() -> list[ImageDetections]:
    return [
        ImageDetections(
            "P0001",
            boxes=[
                [0, 0, 10.25, 0, 10.25, 5.5, 0, 5.5],
                [100, 100, 120, 100, 120, 130, 100, 130],
                [1, 1, 3, 1, 3, 3, 1, 3],
            ],
            labels=["ship", "plane", "ship"],
            scores=[0.9, 0.75, 0.125],
        ),
        ImageDetections("P0002", boxes=[[5, 5, 6, 5, 6, 6, 5, 6]], labels=["plane"], scores=None),
        ImageDetections("P0003", boxes=np.zeros((0, 8)), labels=[], scores=[]),
    ]


def test_task1_round_trip(tmp_path: Path) -> None:
    classes = ["plane", "ship", "harbor"]
    paths = write_task1(_dets(), tmp_path / "sub", classes)
    assert [p.name for p in paths] == ["Task1_plane.txt", "Task1_ship.txt", "Task1_harbor.txt"]
    assert paths[2].read_text() == ""  # every class gets a file
    assert paths[0].read_text().splitlines() == [
        "P0001 0.75 100.00 100.00 120.00 100.00 120.00 130.00 100.00 130.00",
        "P0002 1.0 5.00 5.00 6.00 5.00 6.00 6.00 5.00 6.00",  # missing score written as 1
    ]
    dets, report = read_task1_dir(tmp_path / "sub", classes)
    assert (report.files, report.objects, report.missing_files) == (3, 4, [])
    # first appearance over class files in `classes` order: P0001 (plane file line 1), then P0002
    assert [d.image_id for d in dets] == ["P0001", "P0002"]
    p1 = dets[0]
    # within an image: class order, then line order
    assert p1.labels == ("plane", "ship", "ship")
    assert p1.scores.tolist() == [0.75, 0.9, 0.125]
    np.testing.assert_array_equal(p1.boxes, _dets()[0].boxes[[1, 0, 2]])
    assert dets[1].scores.tolist() == [1.0]


def test_task1_classes_from_file_names(tmp_path: Path) -> None:
    write_task1(_dets(), tmp_path, ["ship", "plane"])
    (tmp_path / "notes.txt").write_text("not a Task1 file")
    dets, report = read_task1_dir(tmp_path)
    # classes sorted by name: plane before ship
    assert dets[0].labels == ("plane", "ship", "ship")
    assert report.files == 2


def test_task1_missing_class_file(tmp_path: Path) -> None:
    write_task1(_dets(), tmp_path, ["plane", "ship"])
    dets, report = read_task1_dir(tmp_path, ["plane", "ship", "bridge"])
    assert report.missing_files == [str(tmp_path / "Task1_bridge.txt")]
    assert sum(len(d) for d in dets) == 4


def test_task1_decimals(tmp_path: Path) -> None:
    det = ImageDetections("P1", boxes=[[0, 0, 1 / 3, 1 / 3]], labels=["ship"], scores=[2 / 3], box_kind="hbb")
    (path,) = write_task1([det], tmp_path, ["ship"], score_decimals=2, coord_decimals=None)
    assert path.read_text() == (
        "P1 0.67 0.0 0.0 0.3333333333333333 0.0 0.3333333333333333 0.3333333333333333 0.0 0.3333333333333333\n"
    )
    # full precision survives the round trip
    dets, _ = read_task1_dir(tmp_path)
    np.testing.assert_array_equal(dets[0].boxes, det.boxes)


def test_task1_write_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="'ship' in image 'P0001'"):
        write_task1(_dets(), tmp_path, ["plane"])
    bad = ImageDetections("P 1", boxes=[[0, 0, 1, 1]], labels=["ship"], box_kind="hbb")
    with pytest.raises(InvalidInputError, match="without whitespace"):
        write_task1([bad], tmp_path, ["ship"])
    nan = ImageDetections("P1", boxes=[[0, 0, 1, np.nan]], labels=["ship"], box_kind="hbb")
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        write_task1([nan], tmp_path, ["ship"])
    with pytest.raises(InvalidInputError, match="without duplicates"):
        write_task1([], tmp_path, ["ship", "ship"])


@pytest.mark.parametrize(
    ("line", "reason", "text"),
    [
        ("P1 0.5 0 0 1 0 1 1 0", "token_count", "expected 10 tokens"),
        ("P1 high 0 0 1 0 1 1 0 1", "bad_score", "score 'high' is not a finite number"),
        ("P1 0.5 0 0 1 0 1 1 0 one", "bad_number", "coordinate 'one' is not a finite number"),
    ],
)
def test_task1_malformed(tmp_path: Path, line: str, reason: str, text: str) -> None:
    path = tmp_path / "Task1_ship.txt"
    path.write_text(f"P1 0.9 0 0 1 0 1 1 0 1\n{line}\nP2 0.1 0 0 1 0 1 1 0 1\n")
    with pytest.raises(RecordError, match=rf"Task1_ship\.txt:2: .*{text}"):
        read_task1_dir(tmp_path)
    dets, report = read_task1_dir(tmp_path, strict=False)
    assert [d.image_id for d in dets] == ["P1", "P2"]
    assert report.skipped == {reason: 1} and report.objects == 2


def test_task1_empty_file_and_missing_dir(tmp_path: Path) -> None:
    (tmp_path / "Task1_ship.txt").write_text("")
    dets, report = read_task1_dir(tmp_path)
    assert dets == [] and report.files == 1
    with pytest.raises(InvalidInputError, match="existing directory"):
        read_task1_dir(tmp_path / "nope")


def test_task1_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_task1(_dets(), tmp_path, ["plane", "ship"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    new = [ImageDetections("P9", boxes=[[0, 0, 1, 1]], labels=["plane"], box_kind="hbb")]
    with pytest.raises(OSError, match="disk full"):
        write_task1(new, tmp_path, ["plane", "ship"])
    # old files intact, no temporary file left behind
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_task1_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    write_task1(_dets(), out, ["plane", "ship"])
    write_task1([], out, ["plane", "ship"])
    assert (out / "Task1_plane.txt").read_text() == ""
    assert sorted(p.name for p in out.iterdir()) == ["Task1_plane.txt", "Task1_ship.txt"]
