"""vhm_eval: VHM eval files, classification prompt suffix removed."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from rsformat.converters import get_converter
from rsformat.converters.base import ConversionReport


def test_vhm_eval_strips_the_cls_suffix_only_in_cls_files(tmp_path: Path) -> None:
    ev = tmp_path / "datasets_eval"
    (ev / "AID").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(ev / "AID" / "a.jpg")
    turns = [{"from": "human", "value": "<image>\nWhich class? Answer with one word or short phrase."},
             {"from": "gpt", "value": "forest"}]  # fmt: skip
    (ev / "cls_AID.json").write_text(json.dumps([{"image": "a.jpg", "image_path": "AID", "conversations": turns}]))
    (ev / "presence_mo_dota.json").write_text(
        json.dumps([{"image": "a.jpg", "image_path": "AID", "conversations": turns}])
    )
    (tmp_path / "list_sft.json").write_text("[]")
    conv = get_converter("vhm_eval")(tmp_path)
    assert conv.splits() == ["eval_cls_AID", "eval_presence_mo_dota"]
    report = ConversionReport("vhm_eval")
    (rec,) = conv.records("eval_cls_AID", report)
    assert [m.text_content for m in rec.messages] == ["Which class?", "forest"]
    assert (rec.source, rec.images, report.rules) == (
        "vhm_eval",
        ("datasets_eval/AID/a.jpg",),
        {"cls_answer_suffix": 1},
    )
    (rec,) = conv.records("eval_presence_mo_dota", report)
    assert rec.messages[0].text_content.endswith("short phrase.")
