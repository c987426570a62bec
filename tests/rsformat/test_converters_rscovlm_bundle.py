"""rscovlm_bundle: a miniature RSCoVLM SFT bundle converted one config per sub-dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import CONVERTERS, ConversionReport
from rsformat.converters.rscovlm_bundle import BUNDLE_LAYOUT, RscovlmBundleConverter, convert_bundle
from rsformat.hub import config_info, list_configs, load_records
from rsformat.synthetic import write_geochat_source, write_lrs_vqa_source, write_refgeo_source


def _image(path: Path, size: tuple[int, int] = (64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _turns(*values: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    data = tmp_path / "playground" / "data"
    write_refgeo_source(data / "refGeo", num_images=1, size=256)  # 3 expressions
    # DOTA-512 as RSCoVLM ships it: a COCO file beside trainval/images
    dota = data / "detection" / "split_ss_dota_512"
    _image(dota / "trainval" / "images" / "P0000__512__0___0.png")
    _image(dota / "trainval" / "images" / "P0001__512__0___0.png")
    _json(dota / "trainval.json", {
        "images": [{"id": 1, "file_name": "P0000__512__0___0.png", "width": 64, "height": 48},
                   {"id": 2, "file_name": "P0001__512__0___0.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10],
                         "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}],
        "categories": [{"id": 1, "name": "plane"}],
    })  # fmt: skip
    # LRS-VQA benchmark: the synthetic writer's jsonl moved to annotations/benchmark
    bench = data / "LRS_VQA" / "images" / "benchmark"
    jsonl = write_lrs_vqa_source(bench, size=400)
    (data / "LRS_VQA" / "annotations" / "benchmark").mkdir(parents=True)
    jsonl.rename(data / "LRS_VQA" / "annotations" / "benchmark" / "LRS_VQA_merged.jsonl")
    # TEOChatlas: one temporal file, and GeoChat's copy whose images live in geochat_data/images
    write_geochat_source(data / "geochat_data", num_images=1, size=256)
    _image(data / "TEOChatlas" / "fMoW" / "a_0.png")
    _image(data / "TEOChatlas" / "fMoW" / "a_1.png")
    _json(data / "TEOChatlas" / "train" / "instruct_fMoW.json", [
        {"id": "t1", "video": ["fMoW/a_0.png", "fMoW/a_1.png"], "conversations": _turns("<video>\nChanged?", "No.")},
    ])  # fmt: skip
    _json(data / "TEOChatlas" / "train" / "instruct_GeoChat_modified.json", [
        {"id": "g1", "image": "G0000.png", "conversations": _turns("<image>\nWhat is it?", "A field.")},
    ])  # fmt: skip
    # VHM re-export: LLaVA records with images under images/
    _image(data / "VHM_dataset_sft" / "images" / "DOTA" / "v.png")
    _json(data / "VHM_dataset_sft" / "vhm_sft_mix_qwen2_5_vl_conversations.json", [
        {"id": "v1", "image": "DOTA/v.png", "conversations": _turns("<image>\nAny ships?", "No.")},
        {"id": "v2", "conversations": _turns("Hello", "Hi.")},
        {"messages": [{"role": "user", "content": "x"}]},
    ])  # fmt: skip
    # GeoChat-Bench: only the referring file
    _json(
        data / "geochat_data" / "benchmark" / "converted" / "referring.jsonl",
        {"question_id": 1, "image_id": "G0000", "question": "the field", "ground_truth": "{<0><0><50><50>}"},
    )
    return tmp_path


PRESENT = [
    "refgeo", "dota_trainval512", "lrsvqa_benchmark", "teochatlas", "geochat_from_teochatlas", "vhm_sft",
    "geochat_bench_referring",
]  # fmt: skip


def test_layout_names_registered_converters() -> None:
    from rsformat import converters  # noqa: F401  (registers every module)

    for name, entry in BUNDLE_LAYOUT.items():
        assert entry.converter in CONVERTERS, name
        assert CONVERTERS[entry.converter].family == entry.family, name


def test_bundle_splits_and_delegation(bundle: Path) -> None:
    conv = get_converter("rscovlm_bundle")(bundle)
    assert isinstance(conv, RscovlmBundleConverter)
    assert conv.splits() == PRESENT
    assert "llava_onevision" in conv.missing() and "coco_train2017" in conv.missing()
    # geochat_data exists but holds no classification/VQA/caption file
    assert conv.missing()["geochat_bench"].startswith("no geochat_bench files")
    report = ConversionReport("x")
    recs = list(conv.records("dota_trainval512", report))
    assert [(r.id, r.source, r.split, r.categories) for r in recs] == [
        ("P0000__512__0___0", "dota", "trainval", ("plane",)),
        ("P0001__512__0___0", "dota", "trainval", ()),
    ]
    with pytest.raises(ValueError, match="Expected `split`"):
        list(conv.records("llava_onevision", report))


def test_convert_bundle_writes_one_config_per_sub_dataset(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done: list[str] = []
    reports = convert_bundle(bundle, out, embed_images=False, on_done=lambda n, r: done.append(n))
    assert done == PRESENT and list_configs(out) == sorted(PRESENT)
    assert reports["llava_onevision"].skipped == {"missing": 1} and reports["llava_onevision"].records_out == 0
    counts = {n: {s: v["num_examples"] for s, v in config_info(out, n)["splits"].items()} for n in PRESENT}
    assert counts == {
        "refgeo": {"train": 3},
        "dota_trainval512": {"trainval": 2},
        "lrsvqa_benchmark": {"test": 7},
        "teochatlas": {"train": 1},
        "geochat_from_teochatlas": {"train": 1},
        "vhm_sft": {"train": 2},
        "geochat_bench_referring": {"referring": 1},
    }
    assert reports["vhm_sft"].skipped == {"unsupported_layout": 1}
    assert config_info(out, "dota_trainval512")["family"] == "detection"
    (geo,) = load_records(out, "geochat_from_teochatlas", "train")
    assert geo.images == ("geochat_data/images/G0000.png",) and geo.source == "teochatlas"
    (video,) = load_records(out, "teochatlas", "train")
    assert video.images == ("fMoW/a_0.png", "fMoW/a_1.png") and video.task == "temporal"
    zoom = list(load_records(out, "lrsvqa_benchmark", "test"))
    assert zoom[0].image == "images/benchmark/image/L0001.png"


def test_convert_bundle_selection_and_unknown_names(bundle: Path, tmp_path: Path) -> None:
    reports = convert_bundle(
        bundle / "playground", tmp_path / "o", datasets=["refgeo", "coco_train2017"], embed_images=False
    )
    assert list(reports) == ["refgeo", "coco_train2017"]
    assert reports["refgeo"].records_out == 3 and reports["coco_train2017"].skipped == {"missing": 1}
    with pytest.raises(ValueError, match="sub-datasets"):
        convert_bundle(bundle, tmp_path / "o", datasets=["nope"])


def test_cli_converts_the_bundle_in_one_command(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rsformat.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "convert",
                "rscovlm_bundle",
                "--input",
                str(bundle),
                "--output",
                str(out),
                "--no-embed-images",
                "--no-progress",
            ]
        )
        == 0
    )
    assert list_configs(out) == sorted(PRESENT)
    printed = capsys.readouterr().out
    assert f"wrote {len(PRESENT)} configs" in printed and "llava_onevision" in printed
