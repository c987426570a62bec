"""DOTA-style patch splitting, checked against the DOTA devkit's splitter run beside ours.

``dotadevkit`` (the PyPI packaging of the DOTA devkit, ``ImgSplit.DataSplitter``)
splits the same image and label file; the window offsets (from the patch names),
the per-patch objects (canonical quads, tolerance 1e-6), the difficult flags and
the patch pixels must all agree. The mmrotate rule (``clip=False``) is checked
against a plain per-pair shapely loop written here from the tool's description.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import shapely
from PIL import Image

from rsformat.converters.base import ConversionReport
from rsformat.converters.dota import DotaConverter
from rsformat.records import DetectionObject, DetectionRecord
from rsformat.split import PRESETS, assign_objects, patch_name, sliding_windows, split_record, split_records
from rsmetrics.geometry import canonical_quad, obb_to_quad
from rsmetrics.io.dota import read_dota_labels

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
CLASSES = ("plane", "ship", "small-vehicle", "harbor")


def write_generated(base: Path, width: int, height: int, n: int, seed: int) -> None:
    """A noise image and ``n`` integer rotated boxes, some across the border, some outside."""
    rng = np.random.default_rng(seed)
    (base / "images").mkdir(parents=True)
    (base / "labelTxt").mkdir()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(base / "images" / "G1.png")
    lines = ["imagesource:GoogleEarth", "gsd:0.5"]
    for i in range(n):
        obb = [rng.uniform(-50, width + 50), rng.uniform(-50, height + 50), rng.uniform(5, 300), rng.uniform(5, 120)]
        quad = np.round(obb_to_quad(np.array([*obb, rng.uniform(-90, 90)]))).astype(int)
        lines.append(" ".join(map(str, quad)) + f" {CLASSES[i % 4]} {int(rng.random() < 0.2)}")
    (base / "labelTxt" / "G1.txt").write_text("\n".join(lines) + "\n")


def devkit_split(base: Path, out: Path, size: int, gap: int, thr: float) -> None:
    splitter_module = pytest.importorskip("dotadevkit.ops.ImgSplit")
    splitter = splitter_module.DataSplitter(
        str(base), str(out), gap=gap, subsize=size, thresh=thr, ext=".png", num_process=1
    )
    try:
        splitter.splitdata(1)
    finally:
        splitter.pool.close()
        splitter.pool.join()


def objects_key(categories, quads, flags) -> list:
    # vertices as a sorted multiset (tolerance 1e-6 by rounding): a clamped devkit quad can repeat a
    # vertex, and the canonical order of such a quad is not unique
    return sorted(
        (c, tuple(sorted(map(tuple, np.round(np.asarray(q, dtype=float).reshape(4, 2), 6).tolist()))), int(d))
        for c, q, d in zip(categories, quads, flags)
    )


def compare_with_devkit(tmp_path: Path, base: Path, size: int, gap: int, thr: float = 0.7) -> int:
    out = tmp_path / f"devkit_{base.name}_{size}"
    devkit_split(base, out, size, gap, thr)
    report = ConversionReport("dota")
    records = list(DotaConverter(base.parent).records(base.name, report))
    ours = {}
    for rec in records:
        for patch in split_record(
            rec,
            base.parent,
            tmp_path / f"ours_{base.name}_{size}",
            size=size,
            gap=gap,
            iof_threshold=thr,
            naming="devkit",
        ):
            ours[patch.id] = patch
    theirs = {p.stem: p for p in (out / "labelTxt").glob("*.txt")}
    assert sorted(theirs) == sorted(ours)  # same windows: the offsets are in the names
    n_objects = 0
    for name, label in theirs.items():
        ann = read_dota_labels(label)
        patch = ours[name]
        expected = objects_key(ann.labels, ann.boxes, ann.difficult)
        got = objects_key(patch.categories, [o.quad for o in patch.objects], [o.difficult for o in patch.objects])
        assert got == expected, name
        n_objects += len(got)
        theirs_px = np.asarray(Image.open(out / "images" / f"{name}.png").convert("RGB"))
        ours_px = np.asarray(Image.open(tmp_path / f"ours_{base.name}_{size}" / patch.image))
        assert ours_px.shape == theirs_px.shape == (size, size, 3) and (ours_px == theirs_px).all(), name
    return n_objects


@pytest.mark.reference
@pytest.mark.parametrize(("size", "gap"), [(1024, 200), (512, 100)])
def test_same_patches_as_the_devkit_on_generated_data(tmp_path, size, gap):
    base = tmp_path / "src" / "gen"
    write_generated(base, 2500, 1800, 400, seed=0)
    n = compare_with_devkit(tmp_path, base, size, gap)
    assert n > 400  # objects on window overlaps count once per window


@pytest.mark.reference
@pytest.mark.parametrize(("size", "gap"), [(1024, 200), (256, 50)])
def test_same_patches_as_the_devkit_on_real_p1888(tmp_path, size, gap):
    png, txt = SAMPLES / "dota" / "P1888.png", SAMPLES / "dota" / "P1888.txt"
    if not (png.exists() and txt.exists()):
        pytest.skip("sample P1888 is absent")
    base = tmp_path / "src" / "p1888"
    (base / "images").mkdir(parents=True)
    (base / "labelTxt").mkdir()
    shutil.copy(png, base / "images")
    shutil.copy(txt, base / "labelTxt")
    n = compare_with_devkit(tmp_path, base, size, gap)
    assert n >= 64  # all 64 objects of the 712x557 image, some in several windows


def test_window_grid():
    assert sliding_windows(712, 557).tolist() == [[0, 0]]  # smaller than a window: one, padded
    assert sliding_windows(1024, 1024).tolist() == [[0, 0]]
    assert sliding_windows(1848, 1024).tolist() == [[0, 0], [824, 0]]  # exactly two steps
    assert sliding_windows(1849, 1024).tolist() == [[0, 0], [824, 0], [825, 0]]  # last moved back
    with pytest.raises(ValueError, match="gap < size"):
        sliding_windows(100, 100, size=100, gap=100)


def reference_mmrotate(quads, flags, windows, size, thr):
    """Per pair, as img_split.py describes it: polygon IoF with the unclipped window, keep >= thr."""
    out = []
    for x, y in windows:
        win = shapely.box(x, y, x + size, y + size)
        kept = []
        for i, q in enumerate(quads):
            poly = shapely.Polygon(q.reshape(4, 2))
            if poly.area <= 0 or not poly.intersects(win):
                continue
            # containment decided exactly: the area ratio can round to 1 - 1e-16 for float vertices
            iof = 1.0 if win.covers(poly) else poly.intersection(win).area / poly.area
            if iof >= thr and poly.intersection(win).area > 0:
                kept.append((i, 2 if iof < 1 else int(flags[i])))
        out.append(kept)
    return out


def test_mmrotate_rule_keeps_unclipped_polygons():
    rng = np.random.default_rng(3)
    quads = canonical_quad(obb_to_quad(np.column_stack([
        rng.uniform(0, 1500, 300), rng.uniform(0, 1200, 300), rng.uniform(5, 200, 300), rng.uniform(5, 80, 300),
        rng.uniform(-90, 90, 300),
    ])))  # fmt: skip
    flags = rng.integers(0, 2, 300)
    windows = sliding_windows(1500, 1200, 512, 100)
    ours = assign_objects(quads, flags, windows, size=512, width=1500, height=1200, iof_threshold=0.7, clip=False)
    expected = reference_mmrotate(quads, flags, windows.tolist(), 512, 0.7)
    for (x, y), patch, ref in zip(windows.tolist(), ours, expected):
        assert list(zip(patch.index.tolist(), patch.difficult.tolist())) == ref
        np.testing.assert_allclose(patch.quads, quads[patch.index] - [x, y] * 4, atol=1e-9)


def test_split_record_outputs(tmp_path):
    Image.new("RGB", (700, 500), (200, 100, 50)).save(tmp_path / "P9.png")
    obj = DetectionObject.from_quad("ship", [10, 10, 40, 10, 40, 30, 10, 30], difficult=1)
    rec = DetectionRecord("P9", "dota", "train", "P9.png", 700, 500, (obj,))
    patches = list(split_record(rec, tmp_path, tmp_path / "out", size=512, gap=100, clip=False))
    assert [p.id for p in patches] == ["P9__512__0___0", "P9__512__188___0"]
    assert patches[0].objects == (DetectionObject.from_quad("ship", [10, 10, 40, 10, 40, 30, 10, 30], 1),)
    assert patches[1].objects == ()  # empty patches are kept
    assert all(p.image == f"images/{p.id}.png" and (p.width, p.height) == (512, 512) for p in patches)
    written = sorted(f.name for f in (tmp_path / "out" / "images").iterdir())
    assert written == ["P9__512__0___0.png", "P9__512__188___0.png"]  # no temporary files left
    px = np.asarray(Image.open(tmp_path / "out" / "images" / "P9__512__0___0.png"))
    assert px.shape == (512, 512, 3) and (px[0, 0] == (200, 100, 50)).all() and (px[511, 0] == 0).all()  # padded

    unpadded = list(split_record(rec, tmp_path, tmp_path / "o2", size=512, gap=100, padding=False, write_images=False))
    assert [(p.width, p.height) for p in unpadded] == [(512, 500), (512, 500)]
    assert not (tmp_path / "o2").exists()
    half = list(split_record(rec, tmp_path, tmp_path / "o3", size=512, gap=100, rate=0.5, naming="devkit"))
    assert [p.id for p in half] == ["P9__0.5__0___0"]
    assert half[0].objects[0].hbb == (5.0, 5.0, 20.0, 15.0)
    assert Image.open(tmp_path / "o3" / half[0].image).size == (512, 512)


def test_split_records_presets_and_names():
    assert PRESETS == {"ss1024": (1024, 200), "ss512": (512, 100)}
    rec = DetectionRecord("P1", "dota", "val", "P1.png", 1100, 900, ())
    ids = [p.id for p in split_records([rec], ".", ".", preset="ss1024", write_images=False)]
    assert ids == ["P1__1024__0___0", "P1__1024__76___0"]
    with pytest.raises(ValueError, match="preset"):
        list(split_records([rec], ".", ".", preset="ms"))
    assert patch_name("P1", 3, 4, naming="devkit") == "P1__1__3___4"
    with pytest.raises(ValueError, match="naming"):
        patch_name("P1", 0, 0, naming="other")  # type: ignore[arg-type]


def test_devkit_rule_details():
    # a 40x20 box half across the right border of the first 100-px window of a 300x100 image
    quads = np.array([[80, 10, 120, 10, 120, 30, 80, 30.0], [95, 40, 140, 40, 140, 60, 95, 60]])
    windows = sliding_windows(300, 100, size=100, gap=0)
    first, *_ = assign_objects(quads, np.array([1, 0]), windows, size=100, width=300, height=100, iof_threshold=0.7)
    # both kept although the second has IoF 5/45 < 0.7: the devkit keeps every cut object, flagged 2
    assert first.index.tolist() == [0, 1] and first.difficult.tolist() == [2, 2]
    # clipped to the window's right edge, x = 100 (= size after the clamp to [1, size])
    assert canonical_quad(first.quads[0]).tolist() == [80, 10, 100, 10, 100, 30, 80, 30]
    # with a low threshold the first keeps its flag (IoF 0.5 > 0.3), as in the devkit
    first, *_ = assign_objects(quads, np.array([1, 0]), windows, size=100, width=300, height=100, iof_threshold=0.3)
    assert first.difficult.tolist() == [1, 2]


def test_png_encoders_give_the_same_pixels(monkeypatch):
    import builtins
    import io

    import numpy as np
    from PIL import Image

    from rsformat.split import _encode_png

    arr = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    image = Image.fromarray(arr)
    with_cv2 = _encode_png(image)
    real_import = builtins.__import__

    def no_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("cv2 hidden by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    with_pillow = _encode_png(image)
    for data in (with_cv2, with_pillow):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), arr)
