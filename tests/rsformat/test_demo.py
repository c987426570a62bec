"""The main job's data part runs end to end on the synthetic sources."""

from __future__ import annotations

import json

from rsformat.demo import main


def test_demo_converts_validates_and_loads(tmp_path, capsys):
    assert main(["--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no problems" in out
    reports = json.loads((tmp_path / "dataset" / "conversion_report.json").read_text())
    assert set(reports) == {"dota", "refgeo", "geochat_instruct", "lrs_vqa"}
    # the synthetic DOTA source has 6 images, one of them without objects (kept)
    assert reports["dota"]["records_out"] == 6
    assert reports["dota"]["counters"].get("empty_images_kept") == 1
    # the zoom record renders to a tool call and a crop of the original image
    assert '"name": "image_zoom_in"' in out
