"""The trainer slice: the online dataset, the training config, optimizer groups, loss, resume, the CPU example."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from rscovlm_ref import testing
from rscovlm_ref.data.collate import collate_packed, collate_padded
from rscovlm_ref.data.dataset import MixtureDataset
from rscovlm_ref.data.encode import IGNORE_INDEX
from rscovlm_ref.data.mixture import ConfigError, MixtureConfig
from rscovlm_ref.train.config import TrainConfig, load_train_config
from rscovlm_ref.train.deepspeed import check_deepspeed_config, write_deepspeed_config, zero_config
from rscovlm_ref.train.run import build_trainer
from rscovlm_ref.train.trainer import losses_from_log, param_groups, selective_logits, token_sum_loss

CONFIGS = Path(__file__).resolve().parents[2] / "rscovlm_ref" / "configs"
PIXELS = 112 * 112


def _mixture() -> MixtureConfig:
    return MixtureConfig.from_dict(
        {
            "seed": 0,
            "num_samples": 64,
            "datasets": [
                {"name": "dota", "path": "dataset", "config": "dota", "weight": 2,
                 "render": {"styles": {"plain-quad": 0.5, "json-hbb": 0.5}, "random_resize": 1.0}},
                {"name": "refgeo", "path": "dataset", "config": "refgeo", "weight": 1, "render": {"random_resize": 1.0}},
                {"name": "geochat", "path": "dataset", "config": "geochat_instruct", "weight": 1},
                {"name": "zoom", "path": "dataset", "config": "lrs_vqa", "split": "test", "weight": 1},
            ],
        }
    )  # fmt: skip


def _cfg(tmp: Path, data: Path, **kw: Any) -> TrainConfig:
    import yaml

    tmp.mkdir(parents=True, exist_ok=True)
    mixture = tmp / "mixture.yaml"

    m = _mixture()
    mixture.write_text(
        yaml.safe_dump(
            {
                "seed": m.seed,
                "num_samples": m.num_samples,
                "datasets": [
                    {"name": d.name, "path": d.path, "config": d.config, "split": d.split, "weight": d.weight,
                     "render": {"styles": dict(d.render.styles), "random_resize": d.render.random_resize}}
                    for d in m.datasets
                ],
            }
        )
    )  # fmt: skip
    base = dict(
        model="tiny",
        mixture=str(mixture),
        data_root=str(data),
        output_dir=str(tmp / "out"),
        learning_rate=1e-3,
        global_batch_size=2,
        per_device_batch_size=1,
        max_length=1024,
        min_pixels=PIXELS,
        max_pixels=PIXELS,
        bf16=False,
        activation_checkpointing=False,
        logging_steps=1,
        save_steps=1000,
        max_steps=2,
        warmup_ratio=0.0,
        report_to="none",
        seed=0,
    )
    base.update(kw)
    return TrainConfig.from_dict(base)


def _model(config: Any) -> Any:
    # a copy: the Trainer aligns the config's pad token id in place, which would change the next model's init
    return testing.tiny_qwen25vl(seed=0, attn_implementation="sdpa", config=copy.deepcopy(config)).train()


@pytest.fixture()
def fresh_model(tiny_config: Any) -> Any:
    return _model(tiny_config).train()


def _small_processor() -> Any:
    return testing.tiny_qwen25vl_processor(min_pixels=PIXELS, max_pixels=PIXELS)


@pytest.fixture(scope="session")
def small_processor() -> Any:
    return _small_processor()


# --------------------------------------------------------------------------- dataset


def test_dataset_is_deterministic_per_key(example_data: Path, small_processor: Any) -> None:
    ds = MixtureDataset(_mixture(), small_processor, base=example_data, min_pixels=PIXELS, max_pixels=PIXELS * 4)
    keys = list(ds.sampler)
    assert len(keys) == len(ds) == 64 and {k[2] for k in keys} == {0, 1, 2, 3}
    a, b = ds[keys[5]], ds[keys[5]]
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.pixel_values, b.pixel_values)
    assert all(ds[k].num_supervised > 0 for k in keys[:8])
    other = MixtureDataset(_mixture(), small_processor, base=example_data, rank=1, world_size=2)
    assert len(other) == 32  # rank 1 of 2: every other draw of the same global order
    assert [k[2:] for k in other.sampler] == [k[2:] for k in keys[1::2]]


def test_missing_dataset_is_a_clear_error(small_processor: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dota.*no dataset folder"):
        MixtureDataset(_mixture(), small_processor, base=tmp_path)


def _bad_records_dataset(tmp: Path) -> Path:
    from PIL import Image

    from rsformat.hub import write_dataset
    from rsformat.records import ContentPart, ConversationRecord, Message

    images = tmp / "images"
    images.mkdir()
    Image.new("RGB", (112, 112), (30, 120, 40)).save(images / "good.png")
    (images / "bad.png").write_bytes(b"not a png at all")

    def conv(i: int, image: str, answer: str | None) -> ConversationRecord:
        user = Message("user", (ContentPart("image", image=0), ContentPart("text", text="Describe the image.")))
        msgs = (user,) if answer is None else (user, Message.text("assistant", answer))
        return ConversationRecord(f"c{i}", "demo", "train", (image,), msgs, task="caption")

    records = [
        conv(0, "good.png", "A green field."),
        conv(1, "bad.png", "A corrupt image."),
        conv(2, "good.png", None),  # no supervised token
        conv(3, "good.png", "field " * 600),  # longer than max_length
    ]
    out = tmp / "bad_ds"
    write_dataset({"train": records}, out, family="conversation", config_name="bad", embed_images=False)
    return images


def test_bad_records_are_skipped_and_counted(tmp_path: Path, small_processor: Any) -> None:
    images = _bad_records_dataset(tmp_path)
    mix = MixtureConfig.from_dict(
        {"mode": "recipe", "datasets": [{"name": "bad", "path": "bad_ds", "config": "bad", "image_root": str(images)}]}
    )
    ds = MixtureDataset(mix, small_processor, base=tmp_path, max_length=300, min_pixels=PIXELS, max_pixels=PIXELS)
    keys = sorted(ds.sampler, key=lambda k: k[3])
    samples = [ds[k] for k in keys]
    assert all(s.num_supervised > 0 and len(s) <= 300 for s in samples)
    # r0 good; r1 -> corrupt, none, long, r0; r2 -> none, long, r0; r3 -> long, r0
    assert dict(ds.stats) == {"samples": 4, "replaced": 3, "corrupt_image": 1, "no_supervised": 2, "too_long": 3}
    # each sample carries its own share; together they are the whole count
    per_sample = sorted((s.stats or {}).get("replaced", 0) for s in samples)
    assert per_sample == [0, 1, 1, 1]
    assert sum((Counter(s.stats) for s in samples), Counter()) == ds.stats
    ds.max_retries = 1
    with pytest.raises(RuntimeError, match="bad records in a row"):
        ds[keys[1]]


# --------------------------------------------------------------------------- config, groups, DeepSpeed


def test_paper_config_validates() -> None:
    cfg = load_train_config(CONFIGS / "paper_multitask_7b.yaml")
    assert (cfg.learning_rate, cfg.global_batch_size, cfg.max_length, cfg.num_epochs) == (2e-6, 32, 6144, 1.0)
    assert (cfg.warmup_ratio, cfg.weight_decay, cfg.lr_scheduler, cfg.bf16) == (0.05, 0.1, "cosine", True)
    assert cfg.lrs() == {"vision": 2e-6, "merger": 2e-6, "llm": 2e-6} and cfg.deepspeed == "zero1"
    assert cfg.gradient_accumulation_steps(world_size=32) == 1 and cfg.mixture_path().is_file()
    defaults = TrainConfig.from_dict({"model": "m", "mixture": "x", "output_dir": "o"})
    assert (defaults.learning_rate, defaults.global_batch_size, defaults.max_length) == (2e-6, 32, 6144)
    assert defaults.attn_implementation == "sdpa" and defaults.activation_checkpointing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rate": -1}, "learning_rate"),
        ({"lr": 1e-3}, "unknown field"),
        ({"global_batch_size": 3, "per_device_batch_size": 2}, "multiple"),
        ({"attn_implementation": "flash"}, "attn_implementation"),
        ({"deepspeed": "zero4"}, "deepspeed"),
        ({"min_pixels": 10**7}, "min_pixels"),
        ({"freeze": ["encoder"]}, "`freeze` must be a list of vision, merger, llm"),
        ({"freeze": ["vision", "merger", "llm"]}, "nothing would be trained"),
    ],
)
def test_config_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"model": "m", "mixture": "x", "output_dir": "o", **change})


def test_param_groups(fresh_model: Any) -> None:
    groups = param_groups(fresh_model, {"vision": 1e-4, "merger": 2e-4, "llm": 3e-4}, 0.1)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {f"{p}/{d}" for p in ("vision", "merger", "llm") for d in ("decay", "no_decay")}
    assert {g["lr"] for g in groups} == {1e-4, 2e-4, 3e-4}
    names = {id(p): n for n, p in fresh_model.named_parameters()}
    for g in groups:
        for p in g["params"]:
            n = names[id(p)]
            is_norm_or_bias = n.endswith(".bias") or "norm" in n or ".ln_q." in n
            assert g["weight_decay"] == (0.0 if is_norm_or_bias else 0.1), n
            assert g["name"].split("/")[0] == ("merger" if ".merger." in n else "vision" if ".visual." in n else "llm")
    assert sum(len(g["params"]) for g in groups) == len(list(fresh_model.parameters()))


def test_deepspeed_configs_keep_our_optimizer(tmp_path: Path) -> None:
    for stage in (1, 2, 3):
        cfg = zero_config(stage)
        assert cfg["zero_optimization"]["stage"] == stage
        assert "optimizer" not in cfg and "scheduler" not in cfg
    path = write_deepspeed_config("zero1", tmp_path)
    assert "optimizer" not in json.loads(Path(path).read_text())
    upstream = {**zero_config(1), "optimizer": {"type": "AdamW", "params": {"lr": "auto"}}}
    with pytest.raises(ValueError, match="parameter groups"):
        check_deepspeed_config(upstream)
    bad = tmp_path / "upstream.json"
    bad.write_text(json.dumps(upstream))
    with pytest.raises(ValueError, match="optimizer"):
        write_deepspeed_config(str(bad), tmp_path)


# --------------------------------------------------------------------------- loss


def test_loss_packed_equals_padded_and_selective_paths(
    example_data: Path, small_processor: Any, fresh_model: Any
) -> None:
    ds = MixtureDataset(_mixture(), small_processor, base=example_data, min_pixels=PIXELS, max_pixels=PIXELS)
    samples = [ds[k] for k in list(ds.sampler)[:3]]
    model = fresh_model.eval()

    def loss_of(batch: dict[str, Any], portable: bool = True) -> torch.Tensor:
        batch = dict(batch)
        labels = batch.pop("labels")
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        logits = selective_logits(model, batch, keep, portable=portable)
        return token_sum_loss(logits, labels[:, 1:][keep[:, :-1]], None)

    with torch.no_grad():
        packed = loss_of(collate_packed(samples))
        padded = loss_of(collate_padded(samples, pad_token_id=0))
        via_keep = loss_of(collate_packed(samples), portable=False)
        full = model(**{k: v for k, v in collate_padded(samples, pad_token_id=0).items()})
    assert math.isfinite(packed.item())
    assert abs(packed.item() - padded.item()) < 1e-5
    assert abs(packed.item() - via_keep.item()) < 1e-5
    # equals the stock full-logits token mean
    assert abs(full.loss.item() - packed.item()) < 1e-4


def _params(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_gradient_accumulation_2x1_equals_1x2(
    tmp_path: Path, example_data: Path, small_processor: Any, tiny_config: Any
) -> None:
    results = []
    for per_device in (1, 2):
        model = _model(tiny_config).train()
        cfg = _cfg(tmp_path / f"ga{per_device}", example_data, per_device_batch_size=per_device, max_steps=1)
        trainer = build_trainer(cfg, model=model, processor=small_processor, echo=False)
        assert trainer.args.gradient_accumulation_steps == 2 // per_device
        trainer.train()
        results.append((losses_from_log(trainer.state.log_history)[1], _params(model)))
    (loss_a, params_a), (loss_b, params_b) = results
    assert abs(loss_a - loss_b) < 1e-5
    assert max((params_a[n] - params_b[n]).abs().max().item() for n in params_a) < 1e-5


# --------------------------------------------------------------------------- training runs


def test_two_step_run_changes_every_parameter(
    tmp_path: Path, example_data: Path, small_processor: Any, fresh_model: Any
) -> None:
    before = _params(fresh_model)
    cfg = _cfg(tmp_path, example_data, activation_checkpointing=True, vision_lr=5e-4, merger_lr=2e-3)
    trainer = build_trainer(cfg, model=fresh_model, processor=small_processor, echo=False)
    trainer.train()
    losses = losses_from_log(trainer.state.log_history)
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for v in losses.values())
    unchanged = [n for n, p in fresh_model.named_parameters() if torch.equal(p.detach(), before[n])]
    assert unchanged == []
    lrs = sorted({g["initial_lr"] for g in trainer.optimizer.param_groups})
    assert lrs == [5e-4, 1e-3, 2e-3]
    log = [json.loads(line) for line in (Path(cfg.output_dir) / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]


def test_frozen_vision_tower_keeps_its_weights(
    tmp_path: Path, example_data: Path, small_processor: Any, fresh_model: Any
) -> None:
    from rscovlm_ref.train.trainer import part_of

    before = _params(fresh_model)
    cfg = _cfg(tmp_path, example_data, freeze=["vision"])
    trainer = build_trainer(cfg, model=fresh_model, processor=small_processor, echo=False)
    trainer.train()
    changed = {n: not torch.equal(p.detach(), before[n]) for n, p in fresh_model.named_parameters()}
    assert not any(c for n, c in changed.items() if part_of(n) == "vision")
    assert all(c for n, c in changed.items() if part_of(n) != "vision")
    assert sorted(g["name"] for g in trainer.optimizer.param_groups) == [
        "llm/decay",
        "llm/no_decay",
        "merger/decay",
        "merger/no_decay",
    ]


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_kill_and_resume_gives_the_same_losses(
    tmp_path: Path, example_data: Path, small_processor: Any, tiny_config: Any
) -> None:
    def run(name: str, *, stop: int | None = None, resume: str | None = None) -> dict[int, float]:
        model = _model(tiny_config).train()
        cfg = _cfg(tmp_path / name, example_data, max_steps=4, save_steps=2, global_batch_size=1, warmup_ratio=0.25)
        callbacks = [_StopAt(stop)] if stop else []
        trainer = build_trainer(cfg, model=model, processor=small_processor, echo=False, callbacks=callbacks)
        trainer.train(resume_from_checkpoint=resume)
        return losses_from_log(trainer.state.log_history)

    straight = run("straight")
    killed = run("killed", stop=2)
    assert sorted(killed) == [1, 2] and (tmp_path / "killed" / "out" / "checkpoint-2").is_dir()
    resumed = run("killed", resume=str(tmp_path / "killed" / "out" / "checkpoint-2"))
    assert sorted(straight) == [1, 2, 3, 4]
    assert [killed[1], killed[2]] == [straight[1], straight[2]]
    assert [resumed[3], resumed[4]] == [straight[3], straight[4]]


def test_cpu_example_runs_through_the_cli(
    tmp_path: Path, example_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rscovlm_ref.cli import main

    out = tmp_path / "run"
    code = main(
        ["train", str(CONFIGS / "cpu_example.yaml"), "--output-dir", str(out), "--data-root", str(example_data),
         "--max-steps", "3"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    assert "step     3/3" in text and "eta 00:00:00" in text and "loads back" in text and "max |diff| 0.0e+00" in text
    assert (out / "final" / "config.json").is_file()
    losses = [
        json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line
    ]
    assert losses and all(np.isfinite(losses))


def test_optional_kernels_are_lazy_and_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from rscovlm_ref.train import deepspeed as ds

    monkeypatch.setattr(ds, "flash_attention_available", lambda: False)
    monkeypatch.setattr(ds, "liger_available", lambda: False)
    assert ds.resolve_attn_implementation("auto") == "sdpa"
    assert ds.resolve_attn_implementation("eager") == "eager"
    with pytest.raises(RuntimeError, match="flash-attn"):
        ds.resolve_attn_implementation("flash_attention_2")
    with pytest.raises(RuntimeError, match="liger-kernel"):
        ds.apply_liger(object())
    monkeypatch.setattr(ds, "flash_attention_available", lambda: True)
    assert ds.resolve_attn_implementation("auto") == "flash_attention_2"


def test_yaml_numbers_without_a_dot(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) reads 2e-6 as a string: accepted as the number it means
    path = tmp_path / "c.yaml"
    path.write_text("model: tiny\nmixture: m.yaml\noutput_dir: o\nlearning_rate: 2e-6\nvision_lr: 1e-5\n")
    cfg = load_train_config(path)
    assert cfg.learning_rate == 2e-6 and cfg.lrs()["vision"] == 1e-5
    path.write_text("model: tiny\nmixture: m.yaml\noutput_dir: o\nlearning_rate: fast\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_train_config(path)


# --------------------------------------------------------------------------- class lists and synonyms


def test_detection_prompts_list_the_dataset_classes_even_for_an_empty_image(
    example_data: Path, small_processor: Any
) -> None:
    mix = MixtureConfig.from_dict(
        {"seed": 0, "num_samples": 4, "datasets": [{"name": "dota", "path": "dataset", "config": "dota",
                                                    "render": {"styles": {"plain-hbb": 1.0}}}]}
    )  # fmt: skip
    ds = MixtureDataset(mix, small_processor, base=example_data, min_pixels=PIXELS, max_pixels=PIXELS)
    src = ds.sources[0]
    # the synthetic DOTA source draws its objects from these classes; its last image has none
    assert set(src.categories()) <= {"plane", "ship", "small-vehicle", "storage-tank", "harbor"}
    empty = next(i for i in range(src.size) if not src.record(i)[0].objects)
    text = small_processor.tokenizer.decode(ds.build(0, empty, np.random.default_rng(0)).input_ids)
    asked = ", ".join(sorted(c.replace("-", " ") for c in src.categories()))
    assert f"find the {asked}" in text and "There are none." in text


def test_synonym_replacement_is_consistent_and_parses_back(example_data: Path, small_processor: Any) -> None:
    from rscovlm_ref.data.synonyms import DOTA_SYNONYMS, vocabulary_table
    from rsmetrics.labels import LabelVocabulary
    from rsmetrics.parsers import Frame, parse_response

    mix = MixtureConfig.from_dict(
        {"seed": 0, "num_samples": 4, "datasets": [{"name": "dota", "path": "dataset", "config": "dota",
                                                    "render": {"styles": {"plain-hbb": 1.0}, "synonym_rate": 1.0,
                                                               "synonyms": "dota"}}]}
    )  # fmt: skip
    ds = MixtureDataset(mix, small_processor, base=example_data, min_pixels=PIXELS, max_pixels=PIXELS)
    src = ds.sources[0]
    full = next(i for i in range(src.size) if src.record(i)[0].objects)
    record = src.record(full)[0]
    sample = ds.build(0, full, np.random.default_rng(0))
    answer = small_processor.tokenizer.decode(sample.input_ids[sample.labels != IGNORE_INDEX])
    # rate 1: no class name of the image is left, each is written as one of its synonyms
    lines = [line for line in answer.replace("<|im_end|>", "").strip().splitlines() if line]
    assert len(lines) == len(record.objects)
    vocab = LabelVocabulary(sorted(DOTA_SYNONYMS), vocabulary_table(DOTA_SYNONYMS))
    parsed = parse_response("\n".join(lines), "rscovlm_plain", frame=Frame.grid(1000), image_size=(1000, 1000))
    assert all(label.replace(" ", "-") not in DOTA_SYNONYMS for label in parsed.labels)
    assert sorted(vocab.match(label) for label in parsed.labels) == sorted(record.categories)


def test_synonym_table_names_no_other_class() -> None:
    from rscovlm_ref.data.synonyms import DOTA_SYNONYMS, vocabulary_table
    from rsmetrics.labels import DOTA_V1_CLASSES, LabelVocabulary

    assert set(DOTA_SYNONYMS) == set(DOTA_V1_CLASSES)
    # LabelVocabulary refuses a synonym that shadows another class or maps to two classes
    LabelVocabulary(DOTA_V1_CLASSES, vocabulary_table(DOTA_SYNONYMS))


def test_synonym_rate_needs_a_table() -> None:
    with pytest.raises(ConfigError, match="needs a `synonyms` table"):
        MixtureConfig.from_dict({"datasets": [{"name": "d", "path": "x", "render": {"synonym_rate": 0.5}}]})
    with pytest.raises(ConfigError, match="synonym table"):
        MixtureConfig.from_dict({"datasets": [{"name": "d", "path": "x", "render": {"synonyms": "fair1m"}}]})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:  # a port nobody listens on, so parallel runs do not collide
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _forget_deepspeed() -> None:
    """Undo the process-wide state a DeepSpeed run leaves (accelerate's singletons, the gloo group)."""
    from accelerate.state import AcceleratorState, PartialState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    # TrainingArguments announces DeepSpeed to accelerate through the environment
    for key in [k for k in os.environ if k.startswith(("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED"))]:
        del os.environ[key]
    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    try:  # DeepSpeed keeps its own handles on the (now destroyed) groups
        import deepspeed.comm.comm as ds_comm
        import deepspeed.utils.groups as ds_groups

        ds_comm.cdb = None
        for name in dir(ds_groups):
            if name.startswith("_") and "GROUP" in name:
                value = getattr(ds_groups, name)
                setattr(ds_groups, name, {} if isinstance(value, dict) else None)
    except ImportError:
        pass


@pytest.mark.parametrize("stage", ["zero1", "zero2", "zero3"])
def test_zero_stages_keep_our_parameter_groups_and_losses(
    stage: str,
    tmp_path: Path,
    example_data: Path,
    small_processor: Any,
    tiny_config: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("deepspeed")
    # one process on the CPU: DeepSpeed initialises a gloo group from these
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        lrs = {"vision_lr": 5e-4, "merger_lr": 2e-3}
        plain = build_trainer(
            _cfg(tmp_path / "plain", example_data, **lrs),
            model=_model(tiny_config),
            processor=small_processor,
            echo=False,
        )
        plain.train()
        cfg = _cfg(tmp_path / stage, example_data, deepspeed=stage, **lrs)
        zero = build_trainer(cfg, model=_model(tiny_config), processor=small_processor, echo=False)
        zero.train()
        # the generated DeepSpeed JSON has no optimizer block, so the Trainer's groups survive
        config = json.loads((Path(cfg.output_dir) / f"deepspeed_{stage}.json").read_text())
        assert "optimizer" not in config and "scheduler" not in config
        groups = (
            zero.optimizer.optimizer.param_groups
            if hasattr(zero.optimizer, "optimizer")
            else zero.optimizer.param_groups
        )
        assert sorted({g["initial_lr"] for g in groups}) == [5e-4, 1e-3, 2e-3]
        assert sorted({g["weight_decay"] for g in groups}) == [0.0, 0.1]
        # ZeRO on one process is the same optimisation: identical losses at both steps (the second
        # comes after an update, so it also checks the update with our parameter groups)
        zero_losses, plain_losses = losses_from_log(zero.state.log_history), losses_from_log(plain.state.log_history)
        assert sorted(zero_losses) == [1, 2]
        assert zero_losses == pytest.approx(plain_losses, abs=1e-5)
    finally:
        _forget_deepspeed()


def test_tensorboard_logs_are_written(
    tmp_path: Path, example_data: Path, small_processor: Any, fresh_model: Any
) -> None:
    pytest.importorskip("tensorboard")
    cfg = _cfg(tmp_path, example_data, report_to="tensorboard")
    build_trainer(cfg, model=fresh_model, processor=small_processor, echo=False).train()
    events = list(Path(cfg.output_dir).rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_boxes_outside_the_image_are_clipped_or_refused(example_data: Path, small_processor: Any) -> None:
    from rsformat.records import DetectionObject, DetectionRecord, GroundingRecord

    ds = MixtureDataset(_mixture(), small_processor, base=example_data, min_pixels=PIXELS, max_pixels=PIXELS)
    # 100x100 image: one box crosses the right border, one lies wholly outside, one inside
    objs = DetectionObject.from_quads(
        ["ship", "ship", "plane"],
        [[90, 10, 120, 10, 120, 20, 90, 20], [150, 10, 160, 10, 160, 20, 150, 20], [10, 10, 20, 10, 20, 20, 10, 20]],
    )
    rec = ds._inside_image(DetectionRecord("a", "x", "train", "a.png", 100, 100, objs))
    assert [o.hbb for o in rec.objects] == [(90.0, 10.0, 100.0, 20.0), (10.0, 10.0, 20.0, 20.0)]
    assert ds.stats["boxes_clipped"] == 2 and ds.stats["boxes_dropped"] == 1
    g = GroundingRecord("g", "x", "train", "a.png", 100, 100, "the ship", (90.0, 10.0, 130.0, 20.0))
    assert ds._inside_image(g).hbb == (90.0, 10.0, 100.0, 20.0)
    with pytest.raises(ValueError, match="outside the 100x100 image"):
        ds._inside_image(GroundingRecord("h", "x", "train", "a.png", 100, 100, "gone", (120.0, 10.0, 130.0, 20.0)))


def test_counts_made_in_dataloader_workers_reach_the_trainer_and_its_checkpoints(
    tmp_path: Path, small_processor: Any, fresh_model: Any
) -> None:
    import yaml

    images = _bad_records_dataset(tmp_path)
    mixture = tmp_path / "bad.yaml"
    mixture.write_text(
        yaml.safe_dump(
            {
                "mode": "recipe",
                "datasets": [{"name": "bad", "path": "bad_ds", "config": "bad", "image_root": str(images)}],
            }
        )
    )
    cfg = _cfg(tmp_path, tmp_path, mixture=str(mixture), max_length=300, dataloader_num_workers=2, save_steps=2)
    trainer = build_trainer(cfg, model=fresh_model, processor=small_processor, echo=False)
    trainer.train()
    # the same hand count as test_bad_records_are_skipped_and_counted: 4 samples, 3 of them stand-ins
    expected = {"samples": 4, "replaced": 3, "corrupt_image": 1, "no_supervised": 2, "too_long": 3}
    assert dict(trainer.data_stats) == expected
    assert not trainer.train_dataset.stats  # built in the workers, not in this process
    logged = [h for h in trainer.state.log_history if "loss" in h][-1]
    assert {k[5:]: int(v) for k, v in logged.items() if k.startswith("data/")} == expected
    saved = json.loads((Path(cfg.output_dir) / "checkpoint-2" / "data_stats.json").read_text())
    assert saved == expected


def _cli(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rscovlm_ref.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw,
    )  # fmt: skip


def _logged_losses(output_dir: Path) -> dict[int, float]:
    losses: dict[int, float] = {}
    for line in (output_dir / "train_log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry:
            losses[int(entry["step"])] = float(entry["loss"])  # a resumed run's entry replaces the killed one's
    return losses


@pytest.mark.slow
def test_sigkill_then_cli_resume_gives_the_losses_of_an_uninterrupted_run(tmp_path: Path, example_data: Path) -> None:
    import yaml

    def config(name: str) -> Path:
        cfg = _cfg(tmp_path / name, example_data, max_steps=6, save_steps=2, global_batch_size=1, warmup_ratio=0.25)
        path = tmp_path / name / "train.yaml"
        fields = {k: getattr(cfg, k) for k in ("model", "mixture", "data_root", "output_dir", "learning_rate",
                  "global_batch_size", "per_device_batch_size", "max_length", "min_pixels", "max_pixels", "bf16",
                  "activation_checkpointing", "logging_steps", "save_steps", "max_steps", "warmup_ratio",
                  "report_to", "seed")}  # fmt: skip
        path.write_text(yaml.safe_dump(fields))
        return path

    straight = _cli(["train", str(config("straight"))])
    text, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, text

    killed_cfg = config("killed")
    out = tmp_path / "killed" / "out"
    proc = _cli(["train", str(killed_cfg)])
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step     3/6"):  # checkpoint-2 is complete; step 4's checkpoint not begun
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and not (out / "final").exists()
    # a save cut short by the kill: weights written, trainer_state.json not yet
    half = out / "checkpoint-4"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 100)

    resumed = _cli(["train", str(killed_cfg), "--resume"])
    text, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, text
    assert "step     4/6" in text and "step     1/6" not in text  # resumed from checkpoint-2, past step 3
    want = _logged_losses(tmp_path / "straight" / "out")
    got = _logged_losses(out)
    assert sorted(want) == sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got == want  # bit-identical: same samples, same weights, same optimizer state
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()  # the half-written folder was written anew


# --------------------------------------------------------------------------- LoRA


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"rank": 8}, r"unknown field\(s\) \['rank'\]"),
        ({"r": 0}, "`r` must be a positive integer"),
        ({"parts": ["merger"]}, "`parts` must list some of"),
        ({"parts": ["llm"], "train_fully": ["llm"]}, "`train_fully` must list parts"),
        ({"dropout": 1.5}, "`dropout` must be in"),
    ],
)
def test_lora_config_errors(lora: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"model": "m", "mixture": "x", "output_dir": "o", "lora": lora})
    with pytest.raises(ConfigError, match="`freeze` and `lora` together"):
        TrainConfig.from_dict({"model": "m", "mixture": "x", "output_dir": "o", "lora": {}, "freeze": ["vision"]})


def test_lora_trains_adapters_and_merger_only_and_merges_exactly(
    tmp_path: Path, example_data: Path, small_processor: Any, tiny_config: Any
) -> None:
    pytest.importorskip("peft")
    from transformers import Qwen2_5_VLForConditionalGeneration

    from rscovlm_ref.infer.backends import HFBackend
    from rscovlm_ref.train.lora import merge_lora
    from rscovlm_ref.train.trainer import part_of

    # the base model comes from a folder, so the adapter names it (base_model_name_or_path)
    base_dir = tmp_path / "base"
    _model(tiny_config).save_pretrained(base_dir)
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(base_dir, attn_implementation="sdpa").train()
    before = _params(base)
    cfg = _cfg(tmp_path, example_data, lora={"r": 4, "alpha": 8, "dropout": 0.0}, learning_rate=1e-2)
    trainer = build_trainer(cfg, model=base, processor=small_processor, echo=False)
    trainer.train()
    peft_model = trainer.model
    trained = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trained and all(".lora_" in n or ".merger." in n for n in trained)
    assert any(".lora_" in n and ".language_model." in n for n in trained)
    # the base weights did not move; the merger (trained in full) did
    core = dict(peft_model.get_base_model().named_parameters())
    for name, value in before.items():
        live = core.get(name) if name in core else core.get(name.replace(".weight", ".base_layer.weight"))
        if live is None:  # a modules_to_save copy: the original is kept frozen beside it
            continue
        if part_of(name) != "merger":
            assert torch.equal(live.detach(), value), name
    merger_copies = {n: p for n, p in peft_model.named_parameters() if ".merger." in n and p.requires_grad}
    assert merger_copies
    for name, p in merger_copies.items():  # base_model.model.<name without modules_to_save.default>
        original = name.removeprefix("base_model.model.").replace("modules_to_save.default.", "")
        assert not torch.equal(p.detach(), before[original]), name

    ds = MixtureDataset(_mixture(), small_processor, base=example_data, min_pixels=PIXELS, max_pixels=PIXELS)
    batch = collate_packed([ds[k] for k in list(ds.sampler)[:2]])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(**inputs).logits
    final = tmp_path / "final"
    trainer.save_model(str(final))
    assert (final / "adapter_config.json").is_file()
    merged_dir = merge_lora(peft_model, tmp_path / "final_merged", small_processor)
    merged = Qwen2_5_VLForConditionalGeneration.from_pretrained(merged_dir, attn_implementation="sdpa").eval()
    with torch.no_grad():
        folded = merged(**inputs).logits
    assert torch.allclose(adapted, folded, atol=1e-5)
    # the inference engine loads the adapter folder onto its base and merges it too
    backend = HFBackend.from_pretrained(str(final), device="cpu")
    with torch.no_grad():
        again = backend.model(**inputs).logits
    assert torch.allclose(adapted, again, atol=1e-5)


def test_lora_kill_and_resume_gives_the_same_losses(
    tmp_path: Path, example_data: Path, small_processor: Any, tiny_config: Any
) -> None:
    pytest.importorskip("peft")

    def run(name: str, *, stop: int | None = None, resume: str | None = None) -> dict[int, float]:
        cfg = _cfg(tmp_path / name, example_data, max_steps=4, save_steps=2, global_batch_size=1,
                   lora={"r": 4, "dropout": 0.0}, learning_rate=1e-2)  # fmt: skip
        callbacks = [_StopAt(stop)] if stop else []
        trainer = build_trainer(cfg, model=_model(tiny_config), processor=small_processor, echo=False,
                                callbacks=callbacks)  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        return losses_from_log(trainer.state.log_history)

    straight = run("straight")
    run("killed", stop=2)
    checkpoint = tmp_path / "killed" / "out" / "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").is_file()
    resumed = run("killed", resume=str(checkpoint))
    assert [resumed[3], resumed[4]] == [straight[3], straight[4]]
    assert straight[4] != straight[1]  # the adapters did learn something


def test_cli_trains_with_lora_and_writes_the_merged_checkpoint(
    tmp_path: Path, example_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("peft")
    import yaml

    from rscovlm_ref.cli import main

    cfg = yaml.safe_load((CONFIGS / "cpu_example.yaml").read_text())
    cfg.update(mixture=str(CONFIGS / "cpu_mixture.yaml"), lora={"r": 4}, save_steps=1000)
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    code = main(["train", str(path), "--output-dir", str(out), "--data-root", str(example_data), "--max-steps", "2"])
    text = capsys.readouterr().out
    assert code == 0 and "final_merged loads back" in text and "max |diff| 0.0e+00" in text
    assert (out / "final" / "adapter_config.json").is_file() and (out / "final_merged" / "config.json").is_file()
