"""Detection converters: DOTA (and STAR, GLH-Bridge), FAIR1M, DIOR/DIOR-R, HRSC2016.

Real sample files are copied into ``tmp_path`` at test time (never into the
repository); the tests that need them are skipped where the samples are absent.
Object counts were taken from the files by hand, as each comment says.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsformat.converters.base import CONVERTERS, ConversionReport, get_converter
from rsformat.converters.dior import DiorConverter, DiorRConverter
from rsformat.converters.dota import STAR_CLASSES, DotaConverter, GlhBridgeConverter, StarConverter
from rsformat.converters.fair1m import FAIR1M_CLASSES, Fair1mConverter
from rsformat.converters.hrsc import Hrsc2016Converter

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<annotation><objects><object><possibleresult><name>&lol3;</name></possibleresult></object></objects></annotation>
"""


def sample(*parts: str) -> Path:
    path = SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"sample {path} is absent")
    return path


def image(path: Path, size: tuple[int, int] = (64, 48), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path, format=fmt)
    return path


def convert(conv, split):
    report = ConversionReport(conv.name)
    return list(conv.records(split, report)), report


def test_registry_has_the_detection_sources():
    for name in ("dota", "star", "glh_bridge", "fair1m", "dior", "dior_r", "hrsc2016"):
        assert get_converter(name) is CONVERTERS[name]
        assert CONVERTERS[name].family == "detection"
    assert len(STAR_CLASSES) == len(set(STAR_CLASSES)) == 48
    assert len(FAIR1M_CLASSES) == len(set(FAIR1M_CLASSES)) == 37


# --------------------------------------------------------------------------- DOTA


def test_dota_real_sample_p1888(tmp_path):
    split = tmp_path / "train"
    (split / "images").mkdir(parents=True)
    (split / "labelTxt").mkdir()
    image_path = split / "images" / "P1888.png"
    shutil.copy(sample("dota", "P1888.png"), image_path)
    shutil.copy(sample("dota", "P1888.txt"), split / "labelTxt" / "P1888.txt")
    conv = DotaConverter(tmp_path)
    assert conv.splits() == ["train"]
    records, report = convert(conv, "train")
    (rec,) = records
    assert image_path.is_file()
    assert (rec.id, rec.image, rec.width, rec.height) == ("P1888", "train/images/P1888.png", 712, 557)
    # `awk 'NF>=9{print $9}' P1888.txt | sort | uniq -c`: 50 large-vehicle, 14 small-vehicle (66 lines, 2 headers)
    assert Counter(rec.categories) == {"large-vehicle": 50, "small-vehicle": 14}
    assert report.skipped == {}
    assert (report.records_in, report.records_out) == (1, 1)
    # first object line: 674 375 683 375 684 394 675 395 small-vehicle 0 (canonical order starts at the top-most)
    first = next(o for o in rec.objects if o.quad[:2] == (674.0, 375.0))
    assert first.category == "small-vehicle" and first.hbb == (674.0, 375.0, 684.0, 395.0)


def test_dota_real_labels_p0770_version_checks(tmp_path):
    labels = tmp_path / "val" / "labelTxt"
    labels.mkdir(parents=True)
    shutil.copy(sample("dota", "P0770.txt"), labels / "P0770.txt")
    image(tmp_path / "val" / "images" / "P0770.png", (1500, 1500))
    records, report = convert(DotaConverter(tmp_path), "val")
    # `awk 'NF>=9{print $9}' P0770.txt | sort | uniq -c`: 2 + 1 + 9 + 10 = 22 objects, all v1.0 classes
    assert len(records[0].objects) == 22 and report.skipped == {}


def test_dota_layout_and_corruption(tmp_path):
    split = tmp_path / "train"
    image(split / "images" / "A.png", (100, 80))
    image(split / "images" / "B.jpg", (50, 50))  # no label file: kept, zero objects
    (split / "images" / "C.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")  # corrupt image
    labels = split / "annfiles"  # mmrotate's label folder name
    labels.mkdir(parents=True)
    (labels / "A.txt").write_text(
        "imagesource:GoogleEarth\n"
        "gsd:0.3\n"
        "10 10 30 10 30 20 10 20 plane 0\n"
        "10 10 30 10 30 twenty 10 20 plane 0\n"  # malformed number
        "10 10 30 10 30 20 plane\n"  # too few tokens
        "90 70 120 70 120 90 90 90 ship 1\n"  # reaches outside the 100x80 image: kept, counted
        "5 5 5 5 5 5 5 5 ship 0\n"  # zero area
        "1 1 4 1 4 4 1 4 container-crane 0\n"  # not a v1.0 class
    )
    (labels / "C.txt").write_text("1 1 4 1 4 4 1 4 plane 0\n")
    (labels / "D.txt").write_text("1 1 4 1 4 4 1 4 plane 0\n")  # no image
    records, report = convert(DotaConverter(tmp_path), "train")
    assert [r.id for r in records] == ["A", "B"]
    a, b = records
    assert a.categories == ("plane", "ship") and a.objects[1].difficult == 1
    assert b.objects == () and b.image == "train/images/B.jpg"
    assert report.skipped == {
        "bad_number": 1,
        "token_count": 1,
        "degenerate_box": 1,
        "unknown_category": 1,
        "corrupt_image": 1,
        "missing_image": 1,
    }
    assert report.counters == {"boxes_outside_image": 1, "images_without_labels": 1, "empty_images_kept": 1}
    assert (report.records_in, report.records_out) == (4, 2)
    assert any("A.txt:4" in m for m in report.messages)  # the line is named

    # version 1.5 knows container-crane; allow_unknown keeps anything
    (rec, _), _ = convert(DotaConverter(tmp_path, version="1.5"), "train")
    assert rec.categories == ("plane", "ship", "container-crane")
    (rec, _), _ = convert(DotaConverter(tmp_path, classes=["ship"], allow_unknown=True), "train")
    assert len(rec.objects) == 3
    with pytest.raises(ValueError, match="version"):
        DotaConverter(tmp_path, version="3.0")


def test_dota_root_level_layout_and_symlink_escape(tmp_path):
    root = tmp_path / "dota"
    image(root / "images" / "A.png")
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / "A.txt").write_text("1 1 9 1 9 5 1 5 plane\n")
    outside = image(tmp_path / "secret.png")
    try:
        os.symlink(outside, root / "images" / "evil.png")
    except OSError:
        pytest.skip("symlinks are not available")
    conv = DotaConverter(root)
    assert conv.splits() == ["all"]
    records, report = convert(conv, "all")
    assert [r.id for r in records] == ["A"]
    assert records[0].objects[0].difficult == 0  # a missing flag means 0
    assert report.skipped == {"unsafe_path": 1}


def test_star_and_glh_bridge_use_their_class_lists(tmp_path):
    image(tmp_path / "train" / "images" / "S.png", (200, 200))
    (tmp_path / "train" / "labelTxt").mkdir()
    (tmp_path / "train" / "labelTxt" / "S.txt").write_text(
        "1 1 9 1 9 5 1 5 baseball_dianmond 0\n20 20 60 20 60 30 20 30 bridge 0\n50 50 60 50 60 60 50 60 plane 0\n"
    )
    (rec,), report = convert(StarConverter(tmp_path), "train")
    assert rec.source == "star" and rec.categories == ("baseball_dianmond", "bridge")
    (rec,), report = convert(GlhBridgeConverter(tmp_path), "train")
    assert rec.source == "glh_bridge" and rec.categories == ("bridge",)
    assert report.skipped == {"unknown_category": 2}


# --------------------------------------------------------------------------- FAIR1M


def test_fair1m_torchgeo_layout_with_real_sample_xml(tmp_path):
    part = tmp_path / "train" / "part1"
    (part / "labelXml").mkdir(parents=True)
    for stem in ("0", "1"):
        shutil.copy(sample("fair1m", f"{stem}.xml"), part / "labelXml" / f"{stem}.xml")
        image(part / "images" / f"{stem}.tif", (2, 2), "TIFF")  # the XML says 2x2
    (part / "labelXml" / "2.xml").write_text(BOMB)
    image(part / "images" / "2.tif", (8, 8), "TIFF")
    (part / "labelXml" / "3.xml").write_text("<annotation><objects>")  # truncated XML
    image(part / "images" / "3.tif", (8, 8), "TIFF")
    conv = Fair1mConverter(tmp_path)
    assert conv.splits() == ["train"]
    records, report = convert(conv, "train")
    # `grep -o '<name>[^<]*</name>'`: one object each, "Liquid Cargo Ship" and "Cargo Truck"
    assert [(r.id, r.categories) for r in records] == [("0", ("Liquid Cargo Ship",)), ("1", ("Cargo Truck",))]
    # 0.xml's ring is (0,0) (1,0) (1,1) (0,1) (0,0): the closing point is dropped
    assert records[0].objects[0].quad == (0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0)
    assert records[0].image == "train/part1/images/0.tif" and (records[0].width, records[0].height) == (2, 2)
    assert report.skipped == {"unsafe_xml": 1, "bad_xml": 1}
    assert any("2.xml" in m and "unsafe_xml" in m for m in report.messages)


def test_fair1m_flat_layout_bad_points_and_unknown(tmp_path):
    split = tmp_path / "val"
    pts = "".join(f"<point>{x},{y}</point>" for x, y in [(1, 1), (9, 1), (9, 5), (1, 5), (1, 1)])
    objs = (
        f"<object><possibleresult><name>Small Car</name></possibleresult><points>{pts}</points></object>"
        "<object><possibleresult><name>Spaceship</name></possibleresult>"
        f"<points>{pts}</points></object>"
        "<object><possibleresult><name>Bus</name></possibleresult><points><point>1,1</point></points></object>"
        "<object><possibleresult><name>Bus</name></possibleresult><points><point>a,b</point></points></object>"
    )
    (split / "labelXml").mkdir(parents=True)
    (split / "labelXml" / "7.xml").write_text(f"<annotation><objects>{objs}</objects></annotation>")
    image(split / "images" / "7.tif", (16, 16), "TIFF")
    image(split / "images" / "8.tif", (16, 16), "TIFF")  # test-set style: no labels
    (rec7, rec8), report = convert(Fair1mConverter(tmp_path), "val")
    assert rec7.categories == ("Small Car",) and rec8.objects == ()
    assert report.skipped == {"unknown_category": 1, "bad_points": 1, "bad_number": 1}


# --------------------------------------------------------------------------- DIOR


def dior_root(tmp_path: Path) -> Path:
    root = tmp_path / "DIOR"
    (root / "JPEGImages-trainval").mkdir(parents=True)
    shutil.copy(sample("dior_r", "00001.jpg"), root / "JPEGImages-trainval" / "00001.jpg")
    obb = root / "Annotations" / "Oriented Bounding Boxes"
    obb.mkdir(parents=True)
    shutil.copy(sample("dior_r", "00001.xml"), obb / "00001.xml")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    shutil.copy(sample("dior_r", "demo.txt"), root / "ImageSets" / "Main" / "train.txt")
    return root


def test_dior_r_real_sample(tmp_path):
    root = dior_root(tmp_path)
    conv = DiorRConverter(root)
    assert conv.splits() == ["train"]
    (rec,), report = convert(conv, "train")
    assert (rec.id, rec.image, rec.width, rec.height) == ("00001", "JPEGImages-trainval/00001.jpg", 800, 800)
    # 00001.xml: one golffield, robndbox corners (133,237) (684,237) (684,672) (133,672)
    (obj,) = rec.objects
    assert obj.category == "golffield"
    assert obj.quad == (133.0, 237.0, 684.0, 237.0, 684.0, 672.0, 133.0, 672.0)
    assert report.skipped == {} and report.labels_mapped == {}


def test_dior_r_case_fallback_escape_and_missing(tmp_path):
    root = dior_root(tmp_path)
    image(root / "JPEGImages-test" / "00002.jpg", (800, 800), "JPEG")
    (root / "Annotations" / "Oriented Bounding Boxes" / "00002.xml").write_text(
        "<annotation>"
        "<object><name>Expressway-Service-area</name><difficult>1</difficult>"
        "<robndbox><x_left_top>10</x_left_top><y_left_top>10</y_left_top><x_right_top>50</x_right_top>"
        "<y_right_top>20</y_right_top><x_right_bottom>45</x_right_bottom><y_right_bottom>40</y_right_bottom>"
        "<x_left_bottom>5</x_left_bottom><y_left_bottom>30</y_left_bottom></robndbox></object>"
        "<object><name>Airplane</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>6</ymax></bndbox></object>"
        "<object><name>airplane</name></object>"  # no box at all
        "</annotation>"
    )
    (root / "ImageSets" / "Main" / "test.txt").write_text("00002\n../../../etc/passwd\n99999\n")
    records, report = convert(DiorRConverter(root), "test")
    (rec,) = records
    assert rec.image == "JPEGImages-test/00002.jpg"
    assert rec.categories == ("expressway-service-area", "airplane")
    assert rec.objects[0].difficult == 1
    assert rec.objects[1].hbb == (1.0, 2.0, 9.0, 6.0)
    assert report.labels_mapped == {"Expressway-Service-area -> expressway-service-area": 1, "Airplane -> airplane": 1}
    assert report.counters["hbb_fallback"] == 1
    assert report.skipped == {"degenerate_box": 1, "unsafe_path": 1, "missing_image": 1}
    assert any("test.txt:2" in m for m in report.messages)


def test_dior_hbb_torchgeo_sample(tmp_path):
    root = tmp_path / "DIOR"
    hbb = root / "Annotations" / "Horizontal Bounding Boxes"
    hbb.mkdir(parents=True)
    for stem in ("000000", "000001"):
        shutil.copy(sample("dior_hbb", f"{stem}.xml"), hbb / f"{stem}.xml")
    (root / "JPEGImages-trainval").mkdir()
    shutil.copy(sample("dior_hbb", "000000.jpg"), root / "JPEGImages-trainval" / "000000.jpg")
    conv = DiorConverter(root)
    assert conv.splits() == ["trainval"]  # no ImageSets: the image folders are the splits
    (rec,), report = convert(conv, "trainval")
    # 000000.xml (one line): stadium, stadium, airplane; 000001 has no image in the sample
    assert rec.categories == ("stadium", "stadium", "airplane") and (rec.width, rec.height) == (32, 32)
    assert rec.objects[0].hbb == (5.0, 11.0, 17.0, 21.0)
    assert report.skipped == {}


# --------------------------------------------------------------------------- HRSC2016


def test_hrsc_real_sample_angle_convention(tmp_path):
    root = tmp_path / "HRSC2016"
    (root / "FullDataSet" / "Annotations").mkdir(parents=True)
    shutil.copy(sample("hrsc", "100000006.xml"), root / "FullDataSet" / "Annotations" / "100000006.xml")
    image(root / "FullDataSet" / "AllImages" / "100000006.bmp", (1172, 816), "BMP")  # Img_SizeWidth/Height
    (root / "ImageSets").mkdir()
    shutil.copy(sample("hrsc", "demo.txt"), root / "ImageSets" / "test.txt")
    conv = Hrsc2016Converter(root)
    assert conv.splits() == ["test"]
    (rec,), report = convert(conv, "test")
    (obj,) = rec.objects
    assert report.skipped == {}
    assert obj.category == "ship" and (rec.width, rec.height) == (1172, 816)
    # mbox: cx 341.2143, cy 443.3325, w 778.4297, h 178.2595, ang -1.122944 rad
    assert obj.obb[:4] == pytest.approx((341.2143, 443.3325, 778.4297, 178.2595))
    assert obj.obb[4] == pytest.approx(math.degrees(-1.122944))
    # the rotated rectangle encloses the ship's annotated box_xmin..box_ymax = 119, 75, 587, 789 (its corners
    # stick out past the tapered hull, by up to 44 px at the bottom)
    x1, y1, x2, y2 = obj.hbb
    assert x1 <= 119 and y1 <= 75 and x2 >= 587 and y2 >= 789
    assert np.allclose(obj.hbb, (119, 75, 587, 789), atol=45)
    # the bow point (header_x, header_y) = (143, 776) is at one end of the long axis: the angle sign is right
    rad = math.radians(obj.obb[4])
    ends = [(341.2143 + s * 389.2 * math.cos(rad), 443.3325 + s * 389.2 * math.sin(rad)) for s in (-1, 1)]
    assert min(math.dist(e, (143, 776)) for e in ends) < 40


def test_hrsc_without_imagesets_and_missing_image(tmp_path):
    ann = tmp_path / "FullDataSet" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "1.xml").write_text("<HRSC_Image><HRSC_Objects></HRSC_Objects></HRSC_Image>")
    (ann / "2.xml").write_text("<HRSC_Image/>")
    image(tmp_path / "FullDataSet" / "AllImages" / "1.bmp", (20, 20), "BMP")
    conv = Hrsc2016Converter(tmp_path)
    assert conv.splits() == ["all"]
    (rec,), report = convert(conv, "all")
    assert rec.objects == () and report.skipped == {"missing_image": 1}
