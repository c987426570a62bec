"""The rsformat command line, with a converter registered by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rsformat_fixtures import make_image

from rsformat.cli import main
from rsformat.converters.base import CONVERTERS, ConversionReport, Converter
from rsformat.hub import list_configs, load_records
from rsformat.records import DetectionObject, DetectionRecord


class _ToyConverter(Converter):
    """Detection records from a folder of PNGs, one split per subfolder."""

    name = "toy_cli"
    family = "detection"
    description = "toy detection source for the CLI tests"
    license = "CC0"

    def splits(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def records(self, split: str, report: ConversionReport) -> Iterator[DetectionRecord]:
        for path in sorted((self.root / split).glob("*.png")):
            report.records_in += 1
            if path.stem == "skip":
                report.skip(f"{split}/{path.name}", "unwanted")
                continue
            report.records_out += 1
            obj = DetectionObject.from_quad("ship", [2, 2, 12, 2, 12, 8, 2, 8])
            yield DetectionRecord(path.stem + split, "toy_cli", split, f"{split}/{path.name}", 32, 16, (obj,))


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    monkeypatch.setitem(CONVERTERS, _ToyConverter.name, _ToyConverter)
    src = tmp_path / "src"
    for split, n in (("train", 5), ("val", 3), ("test", 2)):
        for i in range(n):
            make_image(src / split / f"img{i}.png", 32, 16)
    make_image(src / "train" / "skip.png", 32, 16)
    return src


def test_list(toy, capsys):
    assert main(["list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("toy_cli"))
    assert "detection" in line and "toy detection source" in line


@pytest.mark.parametrize("num_proc", [1, 3])
def test_convert_validate_render(toy, tmp_path, capsys, num_proc):
    out = tmp_path / "out"
    code = main(
        ["convert", "toy_cli", "--input", str(toy), "--output", str(out), "--num-proc", str(num_proc), "--no-progress"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "records in 11, out 10" in printed and "unwanted=1" in printed
    assert list_configs(out) == ["toy_cli"]
    assert [r.id for r in load_records(out, "toy_cli", "train")] == [f"img{i}train" for i in range(5)]
    assert json.loads((out / "conversion_report.json").read_text())["toy_cli"]["skipped"] == {"unwanted": 1}

    assert main(["validate", str(out), "--no-progress"]) == 0
    assert "no problems" in capsys.readouterr().out

    assert (
        main(["render", str(out), "--split", "val", "--index", "2", "--frame", "grid100", "--style", "plain-quad"]) == 0
    )
    shown = capsys.readouterr().out
    assert "id=img2val" in shown and "<|im_start|>assistant\n6,13,38,13,38,50,6,50 ship<|im_end|>" in shown


def test_convert_paths_and_splits(toy, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "convert",
                "toy_cli",
                "--input",
                str(toy),
                "--output",
                str(out),
                "--splits",
                "val",
                "--no-embed-images",
                "--config-name",
                "toy",
                "--no-progress",
            ]
        )
        == 0
    )
    assert [r.image for r in load_records(out, "toy", "val")] == [f"val/img{i}.png" for i in range(3)]
    capsys.readouterr()
    assert main(["validate", str(out), "--image-root", str(toy), "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == {}


def test_validate_fails_with_status_1(toy, tmp_path, capsys):
    out = tmp_path / "out"
    main(["convert", "toy_cli", "--input", str(toy), "--output", str(out), "--no-embed-images", "--no-progress"])
    # path mode without the image root: every image is missing
    assert main(["validate", str(out), "--no-progress"]) == 1
    assert "missing_image: 10" in capsys.readouterr().out


def test_errors_exit_2_naming_the_input(toy, tmp_path, capsys):
    assert main(["convert", "nope", "--input", str(toy), "--output", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["convert", "toy_cli", "--input", str(toy), "--output", str(tmp_path / "o"), "--splits", "dev"]) == 2
    assert "dev" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing")]) == 2
    assert main(["render", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_render_index_out_of_range(toy, tmp_path, capsys):
    out = tmp_path / "out"
    main(["convert", "toy_cli", "--input", str(toy), "--output", str(out), "--no-progress"])
    assert main(["render", str(out), "--split", "test", "--index", "7"]) == 2
    assert "index 7 out of range" in capsys.readouterr().err


def test_push_uses_hub_offline(toy, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    seen = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "__init__", lambda self, **kw: seen.setdefault("init", kw) and None)
    monkeypatch.setattr(
        huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: seen.setdefault("repo", (repo_id, kw))
    )
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: seen.setdefault("upload", kw))
    monkeypatch.setenv("HF_TOKEN", "hf_cli_SECRET_999")
    out = tmp_path / "out"
    main(["convert", "toy_cli", "--input", str(toy), "--output", str(out), "--no-progress"])
    assert main(["push", str(out), "me/toy", "--private"]) == 0
    assert seen["repo"] == ("me/toy", {"repo_type": "dataset", "private": True, "exist_ok": True})
    captured = capsys.readouterr()
    assert "https://huggingface.co/datasets/me/toy" in captured.out
    assert "hf_cli_SECRET_999" not in captured.out + captured.err


def test_split_command_cuts_a_source_into_validated_patches(tmp_path, capsys):
    from rsformat.hub import load_records
    from rsformat.synthetic import write_dota_source

    write_dota_source(tmp_path / "dota", num_images=2, seed=0, size=800)
    out = tmp_path / "patches"
    assert (
        main(
            [
                "split",
                "dota",
                "--input",
                str(tmp_path / "dota"),
                "--output",
                str(out),
                "--preset",
                "ss512",
                "--no-progress",
            ]
        )
        == 0
    )
    # 800 px with 512 px windows and 100 px overlap: offsets 0 and 800 - 512 = 288 on each axis,
    # so 4 patches per image
    patches = list(load_records(out, "dota_ss512", "train"))
    assert sorted(p.id for p in patches)[:4] == [
        "P0000__512__0___0",
        "P0000__512__0___288",
        "P0000__512__288___0",
        "P0000__512__288___288",
    ]
    assert len(patches) == 8 and all((p.width, p.height) == (512, 512) for p in patches)
    assert main(["validate", str(out), "--no-progress"]) == 0


def test_split_refuses_a_non_detection_source(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    assert main(["split", "refgeo", "--input", str(tmp_path / "src"), "--output", str(tmp_path / "out")]) == 2
    assert "detection source" in capsys.readouterr().err
