"""The data engine's sampler, mixture config and random resizing."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from rscovlm_ref.data.mixture import ConfigError, MixtureConfig, load_mixture
from rscovlm_ref.data.resize import draw_input_size, random_resize_frame
from rscovlm_ref.data.sampler import RecipeSampler, WeightedSampler


def test_weighted_proportions_follow_the_weights_not_the_sizes():
    # sizes differ by 1000x; weights 6:3:1 -> expected shares .6, .3, .1 (within 2 % over 10k draws)
    s = WeightedSampler([50, 5_000, 50_000], [6, 3, 1], num_samples=10_000, seed=3)
    counts = Counter(src for src, _ in s)
    for src, share in ((0, 0.6), (1, 0.3), (2, 0.1)):
        assert abs(counts[src] / 10_000 - share) < 0.02


def test_weighted_never_repeats_a_sample_before_its_source_is_exhausted():
    s = WeightedSampler([7, 1000], [10, 1], num_samples=500, seed=0)
    small = [idx for src, idx in s if src == 0]
    for start in range(0, len(small) - 7, 7):  # each block of 7 draws of source 0 is a permutation
        assert sorted(small[start : start + 7]) == list(range(7))


def test_deterministic_in_seed_and_epoch():
    a, b = WeightedSampler([10, 20], [1, 1], seed=5), WeightedSampler([10, 20], [1, 1], seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    b.set_epoch(0)
    assert list(a) != list(b)  # a new epoch is a new order
    c = WeightedSampler([10, 20], [1, 1], seed=6)
    b.set_epoch(0)
    assert list(b) != list(c)


@pytest.mark.parametrize(
    "make", [lambda **kw: WeightedSampler([13, 8], [1, 2], **kw), lambda **kw: RecipeSampler([13, 8], [2, 1], **kw)]
)
def test_shards_partition_the_epoch(make):
    whole = list(make(seed=1))
    shards = [list(make(seed=1, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # same count on every rank
    assert len(shards[0]) == math.ceil(len(whole) / 3)
    # interleaving the shards gives back the global order (plus wrap-around padding)
    merged = [x for group in zip(*shards) for x in group]
    assert merged[: len(whole)] == whole


def test_resume_mid_epoch_continues_the_same_order():
    s = WeightedSampler([100, 100], [1, 3], num_samples=50, seed=9)
    s.set_epoch(2)
    it = iter(s)
    first = [next(it) for _ in range(20)]
    state = s.state_dict()
    rest = list(it)
    resumed = WeightedSampler([100, 100], [1, 3], num_samples=50, seed=9)
    resumed.load_state_dict(state)
    assert list(resumed) == rest
    assert len(first) + len(rest) == 50
    with pytest.raises(ValueError, match="seed"):
        WeightedSampler([100, 100], [1, 3], seed=1).load_state_dict(state)


def test_recipe_repeat_and_keep_semantics():
    # source 0 (10 samples) repeated 3x ("*3"); source 1 (40 samples) keeps 25 % ("%25")
    s = RecipeSampler([10, 40], repeats=[3, 1], keep=[1.0, 0.25], seed=0)
    draws = list(s)
    assert len(draws) == 3 * 10 + 10
    assert Counter(i for src, i in draws if src == 0) == {i: 3 for i in range(10)}
    kept = [i for src, i in draws if src == 1]
    assert len(kept) == len(set(kept)) == 10
    s.set_epoch(1)
    assert sorted(i for src, i in s if src == 1) == sorted(kept)  # the same subset every epoch


def test_bad_sampler_arguments():
    with pytest.raises(ValueError, match="weight > 0"):
        WeightedSampler([1, 2], [1, 0])
    with pytest.raises(ValueError, match="non-empty source"):
        WeightedSampler([0, 0], [1, 1])
    with pytest.raises(ValueError, match="rank"):
        WeightedSampler([1], [1], rank=2, world_size=2)
    with pytest.raises(ValueError, match="repeat count"):
        RecipeSampler([1, 2], repeats=[1, 0])


GOOD = {
    "seed": 1,
    "datasets": [
        {"name": "dota", "path": "data/dota", "config": "dota_ss512", "weight": 25,
         "render": {"styles": {"plain-quad": 0.5, "json-quad": 0.5}, "random_resize": 1.0}},
        {"name": "refgeo", "path": "hf://me/refgeo", "weight": 1},
    ],
}  # fmt: skip


def test_mixture_from_yaml(tmp_path):
    import yaml

    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    cfg = load_mixture(path)
    assert [d.name for d in cfg.datasets] == ["dota", "refgeo"]
    assert cfg.datasets[0].render.styles == {"plain-quad": 0.5, "json-quad": 0.5}
    assert cfg.datasets[0].resolve_path(tmp_path) == str(tmp_path / "data" / "dota")
    assert cfg.datasets[1].resolve_path(tmp_path) == "hf://me/refgeo"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["datasets"][0].update(weight=-1), r"datasets\[0\] \(dota\): `weight` must be > 0"),
        (lambda d: d["datasets"][0].update(repeat=0), r"`repeat` must be an integer >= 1"),
        (lambda d: d["datasets"][0]["render"].update(styles={"plain-quad": 0.7}), "sum to 1"),
        (lambda d: d["datasets"][0]["render"].update(styles={"xml-quad": 1.0}), "unknown style"),
        (lambda d: d["datasets"][1].update(wieght=2), r"unknown field\(s\) \['wieght'\]"),
        (lambda d: d["datasets"][1].update(name="dota"), "must be unique"),
        (lambda d: d["datasets"][1].pop("path"), "`path` is required"),
        (lambda d: d.update(mode="uniform"), "`mode` must be"),
    ],
)
def test_mixture_errors_name_the_dataset_and_field(change, message):
    import copy

    d = copy.deepcopy(GOOD)
    change(d)
    with pytest.raises(ConfigError, match=message):
        MixtureConfig.from_dict(d, source="mix.yaml")


def test_missing_and_broken_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such mixture config"):
        load_mixture(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("datasets: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mixture(tmp_path / "bad.yaml")


def test_random_size_is_log_uniform_in_area():
    rng = np.random.default_rng(0)
    lo, hi = math.log(224 * 224), math.log(1008 * 1008)
    areas = np.array([w * h for w, h in (draw_input_size(512, 512, rng) for _ in range(3000))])
    assert ((areas >= 224 * 224) & (areas <= 1008 * 1008)).all()
    # log-uniform: half of the draws below the middle of the log range (RSCoVLM's draw put
    # most of its mass at the top: about half of its draws were clamped to the maximum)
    assert abs(np.mean(np.log(areas) < (lo + hi) / 2) - 0.5) < 0.03
    assert np.mean(areas == 1008 * 1008) < 0.05


def test_boxes_move_with_the_random_size():
    from rsformat.records import DetectionObject, DetectionRecord
    from rsformat.render import RenderStyle, render
    from rsmetrics.parsers import parse_response

    obj = DetectionObject.from_quad("ship", [100, 50, 300, 50, 300, 150, 100, 150])
    record = DetectionRecord("a", "dota", "train", "a.png", 1000, 800, (obj,))
    rng = np.random.default_rng(1)
    for _ in range(20):
        frame = random_resize_frame(1000, 800, rng)
        w, h = frame.size(1000, 800)
        answer = render(record, frame, RenderStyle.parse("plain-quad"))[-1].text_content
        parsed = parse_response(answer, "rscovlm_plain", frame=frame.parser_frame(1000, 800), image_size=(1000, 800))
        # rounding to whole input pixels moves a vertex by at most half an input pixel
        tol = 0.5 * max(1000 / w, 800 / h) + 1e-9
        assert np.abs(parsed.boxes[0] - np.array(obj.quad)).max() <= tol


def test_shipped_recipes_are_valid():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[2] / "rscovlm_ref" / "configs"
    multi = load_mixture(configs / "rscovlm_multitask.yaml")
    # RSCoVLM's data.json: *6, *8, x1, %10, *1, *1, *25, *1, *2
    assert [d.repeat for d in multi.datasets] == [6, 8, 1, 1, 1, 1, 25, 1, 2]
    assert [d.keep for d in multi.datasets] == [1.0, 1.0, 1.0, 0.1, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert multi.mode == "recipe"
    det = load_mixture(configs / "rscovlm_detection_only.yaml")
    assert det.datasets[0].render.styles == {"plain-quad": 1.0} and det.datasets[0].render.random_resize == 0.0
