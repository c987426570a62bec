"""write_dataset / load_records / push_dataset: lossless round trip, atomic writes, offline push."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest
import yaml
from rsformat_fixtures import family_records

from rsformat.converters.base import ConversionReport, UnsafePathError
from rsformat.hub import (
    PushError,
    config_info,
    list_configs,
    load_records,
    parse_size,
    push_dataset,
    resolve_token,
    write_dataset,
)
from rsformat.records import DetectionRecord, GroundingRecord


def _front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "paths"])
@pytest.mark.parametrize("family", ["detection", "grounding", "zoom", "conversation"])
def test_round_trip_is_lossless(tmp_path, image_root, family, embed):
    by_split = family_records()[family]
    out = tmp_path / "out"
    report = ConversionReport("demo")
    info = write_dataset(
        by_split,
        out,
        family=family,
        config_name="demo",
        embed_images=embed,
        image_root=image_root,
        report=report,
        max_shard_size=1,
    )
    for split, records in by_split.items():
        # max_shard_size=1 byte: every batch closes its shard; one batch here
        assert info["splits"][split]["num_examples"] == len(records)
        assert list(load_records(out, "demo", split)) == records
        assert list(load_records(out, "demo", split, streaming=False, cache_dir=str(tmp_path / "cache"))) == records
    # plain datasets: the card's configs are enough for load_dataset(<dir>)
    ds = datasets.load_dataset(str(out), split=next(iter(by_split)), cache_dir=str(tmp_path / "cache2"))
    assert len(ds) == len(next(iter(by_split.values())))
    if embed and family != "conversation":
        row = ds[0]
        assert row["image"].size == (row["width"], row["height"])  # decoded by datasets.Image()


def test_embedded_images_hold_the_bytes(tmp_path, image_root):
    out = tmp_path / "out"
    write_dataset(family_records()["grounding"], out, family="grounding", config_name="g", image_root=image_root)
    ds = datasets.load_dataset(str(out), split="val", cache_dir=str(tmp_path / "c")).cast_column(
        "image", datasets.Image(decode=False)
    )
    assert ds[0]["image"]["bytes"] == (image_root / "images/a.png").read_bytes()
    assert ds[0]["image"]["path"] == "images/a.png"


def test_shards_card_and_report(tmp_path, image_root):
    recs = [
        GroundingRecord(f"g{i}", "demo", "train", "images/a.png", 64, 48, expression="x", hbb=(0.0, 0.0, 1.0, 1.0))
        for i in range(600)
    ]
    report = ConversionReport("demo", records_in=601, records_out=600)
    report.skip("a.json:3", "bad_number")
    out = tmp_path / "ds"
    info = write_dataset(
        {"train": iter(recs), "empty": iter([])},
        out,
        family="grounding",
        config_name="refgeo",
        embed_images=True,
        image_root=image_root,
        report=report,
        max_shard_size="10KB",
        card_info={
            "license": "CC BY 4.0 (see source)",
            "license_id": "cc-by-4.0",
            "citation": "@article{x}",
            "description": "refGeo subset",
            "tags": ["grounding"],
        },
    )
    files = info["splits"]["train"]["files"]
    assert len(files) == 3  # 256-row batches of ~4 KB images: one batch per shard
    assert files == [f"train-{k:05d}-of-00003.parquet" for k in range(3)]
    assert sorted(p.name for p in (out / "refgeo").iterdir() if p.suffix == ".parquet") == files
    front = _front_matter(out / "README.md")
    assert front["license"] == "cc-by-4.0"
    assert "grounding" in front["tags"] and "remote-sensing" in front["tags"]
    assert front["configs"] == [
        {"config_name": "refgeo", "data_files": [{"split": "train", "path": "refgeo/train-*"}], "default": True}
    ]
    (dsinfo,) = front["dataset_info"]
    assert dsinfo["splits"][0]["name"] == "train" and dsinfo["splits"][0]["num_examples"] == 600
    assert {"name": "image", "dtype": "image"} in dsinfo["features"]
    card = (out / "README.md").read_text()
    for section in (
        "## Structure",
        "## Fields",
        "## Splits",
        "## Source, license and citation",
        "## Conversion report",
    ):
        assert section in card
    assert "@article{x}" in card and '"bad_number": 1' in card
    assert json.loads((out / "conversion_report.json").read_text())["refgeo"]["records_out"] == 600
    assert config_info(out, "refgeo")["splits"]["empty"]["num_examples"] == 0
    assert len(list(load_records(out, "refgeo", "train"))) == 600


def test_second_config_is_kept_and_rerun_replaces(tmp_path, image_root):
    out = tmp_path / "ds"
    recs = family_records()
    write_dataset(recs["detection"], out, family="detection", config_name="dota", image_root=image_root)
    write_dataset(recs["grounding"], out, family="grounding", config_name="refgeo", embed_images=False)
    assert list_configs(out) == ["dota", "refgeo"]
    front = _front_matter(out / "README.md")
    assert [c["config_name"] for c in front["configs"]] == ["dota", "refgeo"]
    assert list(load_records(out, "dota", "train")) == recs["detection"]["train"]
    # rerun of one config replaces it, leaving the other
    write_dataset(
        {"val": recs["grounding"]["val"][:1]}, out, family="grounding", config_name="refgeo", embed_images=False
    )
    assert list(load_records(out, "refgeo", "val")) == recs["grounding"]["val"][:1]
    assert list(load_records(out, "dota", "train")) == recs["detection"]["train"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def test_crash_mid_write_keeps_previous_output(tmp_path, image_root):
    out = tmp_path / "ds"
    recs = family_records()["grounding"]
    write_dataset(recs, out, family="grounding", config_name="g", embed_images=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def exploding():
        yield recs["val"][0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dataset({"val": exploding()}, out, family="grounding", config_name="g", embed_images=False)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def test_killed_process_keeps_previous_output(tmp_path, image_root):
    out = tmp_path / "ds"
    recs = family_records()["grounding"]
    write_dataset(recs, out, family="grounding", config_name="g", embed_images=False)
    before = list(load_records(out, "g", "val"))
    script = textwrap.dedent(f"""
        import os
        from rsformat.hub import write_dataset
        from rsformat.records import GroundingRecord
        def records():
            for i in range(1000):
                if i == 700:
                    os._exit(9)  # killed mid-write: no cleanup runs
                yield GroundingRecord(f"k{{i}}", "d", "val", "x.png", 8, 8, expression="x", hbb=(0.0, 0.0, 1.0, 1.0))
        write_dataset({{"val": records()}}, {str(out)!r}, family="grounding", config_name="g", embed_images=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp-")]  # its leftovers
    assert list(load_records(out, "g", "val")) == before
    # the next run removes the dead run's temporaries and replaces the output
    write_dataset({"val": recs["val"][:1]}, out, family="grounding", config_name="g", embed_images=False)
    assert list(load_records(out, "g", "val")) == recs["val"][:1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def test_lost_between_renames_is_restored(tmp_path):
    out = tmp_path / "ds"
    recs = family_records()["grounding"]
    write_dataset(recs, out, family="grounding", config_name="g", embed_images=False)
    # a kill between the two renames leaves only the renamed previous output
    out.rename(tmp_path / ".ds.old-999999999-abc")
    write_dataset({"val": recs["val"][:1]}, out, family="grounding", config_name="h", embed_images=False)
    assert list_configs(out) == ["g", "h"]


def test_unreadable_images(tmp_path, image_root):
    bad = [
        GroundingRecord("ok", "d", "val", "images/a.png", 64, 48, expression="x", hbb=(0.0, 0.0, 1.0, 1.0)),
        GroundingRecord("gone", "d", "val", "images/missing.png", 64, 48, expression="x", hbb=(0.0, 0.0, 1.0, 1.0)),
        GroundingRecord("escape", "d", "val", "../../etc/passwd", 64, 48, expression="x", hbb=(0.0, 0.0, 1.0, 1.0)),
    ]
    report = ConversionReport("d", records_in=3, records_out=3)
    info = write_dataset({"val": bad}, tmp_path / "o", family="grounding", image_root=image_root, report=report)
    assert info["splits"]["val"]["num_examples"] == 1
    assert report.skipped == {"image_unreadable_at_write": 2} and report.records_out == 1
    assert any("gone" in m for m in report.messages)
    with pytest.raises(UnsafePathError):
        write_dataset({"val": bad[2:]}, tmp_path / "o2", family="grounding", image_root=image_root)


def test_wrong_family_and_names(tmp_path):
    rec = family_records()["detection"]["train"][0]
    with pytest.raises(TypeError, match="'a'"):
        write_dataset({"train": [rec]}, tmp_path / "o", family="grounding", embed_images=False)
    with pytest.raises(ValueError):
        write_dataset({"train": []}, tmp_path / "o", family="grounding", config_name="../x", embed_images=False)
    with pytest.raises(ValueError):
        write_dataset({"a/b": []}, tmp_path / "o", family="grounding", embed_images=False)
    assert not (tmp_path / "o").exists()
    assert isinstance(rec, DetectionRecord)


def test_parse_size():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("2KiB") == 2048
    with pytest.raises(ValueError):
        parse_size("lots")


# --------------------------------------------------------------------------- push, offline

SECRET = "hf_SECRETtoken0123456789"


@pytest.fixture()
def fake_hub(monkeypatch):
    import huggingface_hub

    calls: dict[str, list] = {"init": [], "create_repo": [], "upload_folder": []}

    def init(self, *args, **kwargs):
        calls["init"].append(kwargs)

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"].append((repo_id, kwargs))

    def upload_folder(self, **kwargs):
        calls["upload_folder"].append(kwargs)

    monkeypatch.setattr(huggingface_hub.HfApi, "__init__", init)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_push_calls_the_hub_with_the_token(tmp_path, image_root, fake_hub, monkeypatch, capsys, caplog):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "ds"
    write_dataset(family_records()["grounding"], out, family="grounding", config_name="refgeo", image_root=image_root)
    caplog.set_level(logging.DEBUG)
    url = push_dataset(out, "me/rs-data", private=True, token=SECRET)
    assert url == "https://huggingface.co/datasets/me/rs-data"
    assert fake_hub["init"] == [{"token": SECRET}]
    assert fake_hub["create_repo"] == [("me/rs-data", {"repo_type": "dataset", "private": True, "exist_ok": True})]
    (upload,) = fake_hub["upload_folder"]
    assert upload["repo_id"] == "me/rs-data" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == out and "refgeo" in upload["commit_message"]
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err + caplog.text


def test_push_token_from_env_and_errors_are_scrubbed(tmp_path, fake_hub, monkeypatch, capsys, caplog):
    import huggingface_hub

    out = tmp_path / "ds"
    write_dataset(family_records()["grounding"], out, family="grounding", embed_images=False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert resolve_token() == SECRET
    push_dataset(out, "me/x")
    assert fake_hub["init"][-1] == {"token": SECRET}

    def refuse(self, **kwargs):
        raise RuntimeError(f"401 Unauthorized for token {SECRET}")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", refuse)
    with pytest.raises(PushError) as err:
        push_dataset(out, "me/x")
    assert SECRET not in str(err.value) and "***" in str(err.value)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err + caplog.text


def test_push_refuses_without_token_or_folder(tmp_path, fake_hub, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    out = tmp_path / "ds"
    write_dataset(family_records()["grounding"], out, family="grounding", embed_images=False)
    with pytest.raises(PushError, match="no Hugging Face token"):
        push_dataset(out, "me/x")
    with pytest.raises(FileNotFoundError):
        push_dataset(tmp_path / "nothing", "me/x", token=SECRET)
    with pytest.raises(ValueError):
        push_dataset(out, "not a repo", token=SECRET)
    assert fake_hub["upload_folder"] == [] and os.environ.get("HF_TOKEN") is None
