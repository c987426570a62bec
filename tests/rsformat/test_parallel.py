"""Parallel conversion inside a split: the work-unit protocol, ``convert --num-proc`` and ``--resume``."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rsformat_fixtures import make_image

from rsformat import cli
from rsformat.cli import main, plan_tasks
from rsformat.converters.base import CONVERTERS, ConversionReport, Converter
from rsformat.converters.dota import DotaConverter
from rsformat.hub import INFO_FILE, load_records
from rsformat.records import DetectionObject, DetectionRecord
from rsformat.synthetic import write_dota_source


def _digest(out: Path, config: str = "dota") -> dict[str, str]:
    """Hash of every shard and of the report of a config."""
    folder = out / config
    files = sorted(p for p in folder.iterdir() if p.suffix == ".parquet" or p.name == "conversion_report.json")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _convert(src: Path, out: Path, *extra: str) -> int:
    return main(["convert", "dota", "--input", str(src), "--output", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def dota_src(tmp_path_factory) -> Path:
    """A synthetic DOTA source with two splits and a few faults (each counted in the report)."""
    root = tmp_path_factory.mktemp("dota") / "src"
    write_dota_source(root, num_images=23, seed=0, size=320)
    shutil.copytree(root / "train", root / "val")
    labels = root / "train" / "labelTxt"
    # faults: a bad line, an unknown class, a label without image, an image without label
    with (labels / "P0003.txt").open("a") as fh:
        fh.write("1 2 3 oops\n5 5 30 5 30 20 5 20 cow 0\n")
    (labels / "Z_orphan.txt").write_text("1 1 9 1 9 5 1 5 ship 0\n")
    (labels / "P0007.txt").unlink()
    return root


# --------------------------------------------------------------------------- unit protocol


def test_base_default_is_one_unit_per_split(tmp_path):
    class Plain(Converter):
        name = "plain_units"
        family = "detection"

        def splits(self) -> list[str]:
            return ["train"]

        def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
            report.records_in += 1
            yield DetectionRecord("a", "plain_units", split, "a.png", 4, 4, ())

    conv = Plain(tmp_path)
    assert conv.units("train") == ["train"]
    report = ConversionReport("plain_units")
    assert [r.id for r in conv.records_for_units("train", ["train"], report)] == ["a"]
    assert report.records_in == 1


def test_dota_units_are_sorted_stems(dota_src):
    conv = DotaConverter(dota_src)
    units = conv.units("train")
    assert units == sorted(units) and "Z_orphan" in units and "P0007" in units
    assert len(units) == 24


@pytest.mark.parametrize("cuts", [[1], [5, 6], [0, 3, 10, 23, 24]])
def test_dota_chunks_concatenate_to_the_split(dota_src, cuts):
    conv = DotaConverter(dota_src)
    whole_report = ConversionReport("dota")
    whole = list(conv.records("train", whole_report))
    units = conv.units("train")
    bounds = [0, *cuts, len(units)]
    merged = ConversionReport("dota")
    parts = []
    for a, b in itertools.pairwise(bounds):
        part_report = ConversionReport("dota")
        parts += list(conv.records_for_units("train", units[a:b], part_report))
        merged.merge(part_report)
    assert parts == whole
    assert merged.summary() == whole_report.summary()
    assert whole_report.skipped  # the faults are there
    assert whole_report.counters.get("images_without_labels") == 1


def test_dota_vanished_unit_is_counted(dota_src):
    report = ConversionReport("dota")
    assert list(DotaConverter(dota_src).records_for_units("train", ["nope"], report)) == []
    assert report.skipped == {"missing_file": 1} and report.records_in == 1


def test_report_round_trips_through_its_summary():
    r = ConversionReport("x", records_in=4, records_out=3)
    r.skip("a:1", "bad", "detail")
    r.count("clipped", 2)
    r.mapped("Ship", "ship")
    assert ConversionReport.from_summary(json.loads(json.dumps(r.summary()))) == r


def test_fingerprint_follows_the_source_files(dota_src, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(dota_src, src)
    conv = DotaConverter(src)
    before = {s: conv.fingerprint(s) for s in conv.splits()}
    assert before == {s: DotaConverter(src).fingerprint(s) for s in conv.splits()}
    assert DotaConverter(src, version="2.0").fingerprint("train") != before["train"]
    with (src / "val" / "labelTxt" / "P0001.txt").open("a") as fh:
        fh.write("\n")
    after = {s: conv.fingerprint(s) for s in conv.splits()}
    assert after["train"] == before["train"] and after["val"] != before["val"]


# --------------------------------------------------------------------------- planning


@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    num_proc=st.integers(1, 6),
    max_units=st.integers(1, 9),
)
def test_plan_tasks_is_contiguous_and_complete(sizes, num_proc, max_units):
    units = {f"s{i}": [f"u{k}" for k in range(n)] for i, n in enumerate(sizes)}
    tasks = plan_tasks(units, num_proc, max_units=max_units)
    for split, us in units.items():
        mine = [u for s, u in tasks if s == split]
        assert [x for chunk in mine for x in chunk] == us  # contiguous, in order, complete
        if us:
            assert len(mine) == min(len(us), max(num_proc, -(-len(us) // max_units)))
            assert all(chunk for chunk in mine)
            assert max(map(len, mine)) - min(map(len, mine)) <= 1
    assert [s for s, _ in tasks] == sorted((s for s, _ in tasks), key=list(units).index)


# --------------------------------------------------------------------------- convert --num-proc


@pytest.mark.parametrize("embed", ["--embed-images", "--no-embed-images"])
def test_num_proc_output_is_identical(dota_src, tmp_path, capsys, embed):
    _convert(dota_src, tmp_path / "one", "--num-proc", "1", embed)
    _convert(dota_src, tmp_path / "three", "--num-proc", "3", embed)
    one, three = _digest(tmp_path / "one"), _digest(tmp_path / "three")
    assert one == three and any(n.startswith("val-") for n in one)
    out = capsys.readouterr().out
    assert "missing_image=1" in out and "images_without_labels=1" in out


def test_num_proc_many_small_tasks_and_messages(dota_src, tmp_path, monkeypatch):
    """Several tasks per worker and several messages per task (fork start: the workers see the patch)."""
    if cli.mp.get_start_method() != "fork":
        pytest.skip("the patched module constants only reach forked workers")
    monkeypatch.setattr(cli, "_TASK_UNITS", 4)
    monkeypatch.setattr(cli, "_CHUNK", 3)
    monkeypatch.setattr(cli, "_QUEUE_CHUNKS", 2)
    assert _convert(dota_src, tmp_path / "one", "--num-proc", "1", "--no-embed-images") == 0
    assert _convert(dota_src, tmp_path / "two", "--num-proc", "2", "--no-embed-images") == 0
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    ids = [r.id for r in load_records(tmp_path / "two", "dota", "train")]
    assert ids == sorted(ids) and len(ids) == 23


def test_more_processes_than_units(dota_src, tmp_path):
    src = tmp_path / "src"
    (src / "train" / "images").mkdir(parents=True)
    (src / "train" / "labelTxt").mkdir()
    for stem in ("P0000", "P0001"):
        shutil.copy(dota_src / "train" / "images" / f"{stem}.png", src / "train" / "images")
        shutil.copy(dota_src / "train" / "labelTxt" / f"{stem}.txt", src / "train" / "labelTxt")
    assert _convert(src, tmp_path / "a", "--num-proc", "1") == 0
    assert _convert(src, tmp_path / "b", "--num-proc", "8") == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


class _FailingConverter(Converter):
    """Records from PNGs, one unit each; the unit named ``boom`` raises."""

    name = "toy_failing"
    family = "detection"

    def splits(self) -> list[str]:
        return ["train"]

    def units(self, split: str) -> list[str]:
        return sorted(p.stem for p in (self.root / split).glob("*.png"))

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        return self.records_for_units(split, self.units(split), report)

    def records_for_units(
        self, split: str, units: Sequence[str], report: ConversionReport
    ) -> Iterator[DetectionRecord]:
        obj = DetectionObject.from_quad("ship", [2, 2, 12, 2, 12, 8, 2, 8])
        for stem in units:
            if stem == "boom":
                raise RuntimeError(f"cannot read {stem}")
            report.records_in += 1
            report.records_out += 1
            yield DetectionRecord(stem, self.name, split, f"{split}/{stem}.png", 32, 16, (obj,))


def test_worker_error_stops_the_run(tmp_path, monkeypatch, capsys):
    if cli.mp.get_start_method() != "fork":
        pytest.skip("the test converter is registered in this process only")
    monkeypatch.setitem(CONVERTERS, _FailingConverter.name, _FailingConverter)
    src = tmp_path / "src"
    for stem in ("a", "b", "boom", "c", "d", "e"):
        make_image(src / "train" / f"{stem}.png", 32, 16)
    out = tmp_path / "out"
    code = main(
        ["convert", "toy_failing", "--input", str(src), "--output", str(out), "--num-proc", "3", "--no-progress"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "RuntimeError: cannot read boom" in err and "split 'train'" in err
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
    (src / "train" / "boom.png").unlink()
    assert (
        main(["convert", "toy_failing", "--input", str(src), "--output", str(out), "--num-proc", "3", "--no-progress"])
        == 0
    )
    assert [r.id for r in load_records(out, "toy_failing", "train")] == ["a", "b", "c", "d", "e"]


# --------------------------------------------------------------------------- --resume


def test_resume_keeps_unchanged_splits(dota_src, tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(dota_src, src)
    out, ref = tmp_path / "out", tmp_path / "ref"
    assert _convert(src, out, "--resume", "--num-proc", "2") == 0  # no output yet: converts everything
    first = _digest(out)
    train_shards = {p.name: p.stat().st_ino for p in (out / "dota").glob("train-*.parquet")}
    capsys.readouterr()

    assert _convert(src, out, "--resume") == 0
    printed = capsys.readouterr().out
    assert "train: unchanged" in printed and "val: unchanged" in printed
    assert _digest(out) == first
    # kept by hard links, not rewritten
    assert {p.name: p.stat().st_ino for p in (out / "dota").glob("train-*.parquet")} == train_shards

    # a changed label file: only its split is converted again, and the result is a fresh conversion's
    label = src / "val" / "labelTxt" / "P0002.txt"
    label.write_text(label.read_text() + "5 5 30 5 30 20 5 20 plane 1\n")
    assert _convert(src, out, "--resume", "--num-proc", "2") == 0
    printed = capsys.readouterr().out
    assert "train: unchanged" in printed and "val: unchanged" not in printed
    assert {p.name: p.stat().st_ino for p in (out / "dota").glob("train-*.parquet")} == train_shards
    assert _convert(src, ref) == 0
    assert _digest(out) == _digest(ref) != first
    info = json.loads((out / "dota" / INFO_FILE).read_text())
    assert info["splits"]["val"]["fingerprint"] == DotaConverter(src).fingerprint("val")


def test_resume_converts_again_when_the_mode_changes(dota_src, tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert(dota_src, out, "--no-embed-images") == 0
    capsys.readouterr()
    assert _convert(dota_src, out, "--resume") == 0
    assert "unchanged" not in capsys.readouterr().out
    assert json.loads((out / "dota" / INFO_FILE).read_text())["embed_images"] is True


def test_without_resume_a_rerun_replaces(dota_src, tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert(dota_src, out) == 0
    old = {p.name: p.stat().st_ino for p in (out / "dota").glob("*.parquet")}
    assert _convert(dota_src, out, "--num-proc", "2") == 0
    assert "unchanged" not in capsys.readouterr().out
    new = {p.name: p.stat().st_ino for p in (out / "dota").glob("*.parquet")}
    assert old.keys() == new.keys() and all(old[k] != new[k] for k in old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert os.listdir(out)
