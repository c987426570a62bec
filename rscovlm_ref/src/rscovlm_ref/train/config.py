"""The training config: one YAML file, validated with errors that name the file and the field.

Defaults are the paper's multi-task recipe (RSCoVLM ``train_multitask_7b.sh``):
AdamW, lr 2e-6 for every part, weight decay 0.1 (not on norms and biases),
cosine schedule with 5 % warmup, global batch 32 samples, max length 6,144,
one epoch, bf16, activation checkpointing, 224²..1008² pixels.

Example:
    >>> cfg = TrainConfig.from_dict({"model": "tiny", "mixture": "m.yaml", "output_dir": "out"})
    >>> cfg.learning_rate, cfg.global_batch_size, cfg.max_length, cfg.warmup_ratio
    (2e-06, 32, 6144, 0.05)
    >>> cfg.gradient_accumulation_steps(world_size=8)
    4
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rscovlm_ref.data.mixture import ConfigError, read_yaml

__all__ = ["ConfigError", "TrainConfig", "load_train_config"]

_ATTN = ("auto", "sdpa", "eager", "flash_attention_2")
_SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_min_lr")


@dataclass
class TrainConfig:
    """All settings of a training run (see the module doc for the defaults' origin)."""

    model: str  # a model folder / Hub id, or "tiny" (the offline tiny Qwen2.5-VL of rscovlm_ref.testing)
    mixture: str  # the mixture YAML (relative: to this config's folder, then the working directory)
    output_dir: str
    processor: str | None = None  # default: the model's own
    data_root: str | None = None  # relative dataset paths of the mixture resolve here (default: the mixture's folder)
    # optimisation (paper defaults)
    learning_rate: float = 2e-6  # the language model's
    vision_lr: float | None = None  # default: learning_rate
    merger_lr: float | None = None  # default: learning_rate
    freeze: list[str] = dataclasses.field(default_factory=list)  # parts not trained: vision, merger, llm
    lora: dict[str, Any] | None = None  # LoRA instead of full fine-tuning (train/lora.py; needs peft)
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    num_epochs: float = 1.0
    max_steps: int = -1
    global_batch_size: int = 32  # samples per optimizer step over all devices
    per_device_batch_size: int = 1  # samples per micro-batch (packed into one row when packing)
    # data
    max_length: int = 6144
    min_pixels: int = 224 * 224
    max_pixels: int = 1008 * 1008
    packing: bool = True
    dataloader_num_workers: int = 0
    # model / kernels
    bf16: bool = True
    tf32: bool = False
    activation_checkpointing: bool = True
    attn_implementation: str = "sdpa"  # "auto": flash_attention_2 when installed (and on a GPU), else sdpa
    use_liger: bool = False  # Liger kernels (GPU extra); refused with a clear message when not installed
    deepspeed: str | None = None  # "zero1" / "zero2" / "zero3" (built here) or a JSON path without optimizer block
    # bookkeeping
    seed: int = 42
    logging_steps: int = 10
    save_steps: int = 5000
    save_total_limit: int | None = None
    report_to: str = "auto"  # "auto": tensorboard when installed; always a JSONL log in output_dir
    source: str = "<dict>"

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> TrainConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: the config must be a mapping, but got {type(d).__name__}")
        names = {f.name for f in fields(cls)} - {"source"}
        extra = sorted(set(d) - names)
        if extra:
            raise ConfigError(f"{source}: unknown field(s) {extra}; expected some of {sorted(names)}")
        for key in ("model", "mixture", "output_dir"):
            if not isinstance(d.get(key), str) or not d.get(key):
                raise ConfigError(f"{source}: `{key}` is required and must be a non-empty string")
        cfg = cls(**{k: v for k, v in d.items()}, source=source)
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> TrainConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        where = self.source

        def number(name: str, *, low: float, high: float = math.inf, open_low: bool = False, integer: bool = False):
            value = getattr(self, name)
            if isinstance(value, str) and not integer:  # YAML 1.1 reads 2e-6 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (integer and not isinstance(value, int))
            ):
                kind = "an integer" if integer else "a number"
                raise ConfigError(f"{where}: `{name}` must be {kind}, but got {value!r}")
            ok = (value > low if open_low else value >= low) and value <= high and math.isfinite(value)
            if not ok:
                bound = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
                raise ConfigError(f"{where}: `{name}` must be {bound}, but got {value!r}")
            if not integer:
                setattr(self, name, float(value))
            return value

        for name in ("learning_rate",):
            number(name, low=0, open_low=True)
        for name in ("vision_lr", "merger_lr"):
            if getattr(self, name) is not None:
                number(name, low=0)
        number("weight_decay", low=0)
        number("adam_beta1", low=0, high=1)
        number("adam_beta2", low=0, high=1)
        number("adam_epsilon", low=0, open_low=True)
        number("max_grad_norm", low=0)
        number("warmup_ratio", low=0, high=0.999)
        number("num_epochs", low=0, open_low=True)
        if (
            not isinstance(self.max_steps, int)
            or isinstance(self.max_steps, bool)
            or self.max_steps < -1
            or self.max_steps == 0
        ):
            raise ConfigError(f"{where}: `max_steps` must be -1 (use num_epochs) or >= 1, but got {self.max_steps!r}")
        for name in ("global_batch_size", "per_device_batch_size", "max_length", "min_pixels", "max_pixels"):
            number(name, low=1, integer=True)
        for name in ("logging_steps", "save_steps"):
            number(name, low=1, integer=True)
        number("dataloader_num_workers", low=0, integer=True)
        number("seed", low=0, integer=True)
        if self.save_total_limit is not None:
            number("save_total_limit", low=1, integer=True)
        if self.min_pixels > self.max_pixels:
            raise ConfigError(f"{where}: `min_pixels` ({self.min_pixels}) must be <= `max_pixels` ({self.max_pixels})")
        if self.global_batch_size % self.per_device_batch_size:
            raise ConfigError(
                f"{where}: `global_batch_size` ({self.global_batch_size}) must be a multiple of "
                f"`per_device_batch_size` ({self.per_device_batch_size})"
            )
        if self.lr_scheduler not in _SCHEDULERS:
            raise ConfigError(
                f"{where}: `lr_scheduler` must be one of {list(_SCHEDULERS)}, but got {self.lr_scheduler!r}"
            )
        if self.attn_implementation not in _ATTN:
            raise ConfigError(
                f"{where}: `attn_implementation` must be one of {list(_ATTN)}, but got {self.attn_implementation!r}"
            )
        for name in ("bf16", "tf32", "activation_checkpointing", "packing", "use_liger"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{where}: `{name}` must be true or false, but got {getattr(self, name)!r}")
        if self.deepspeed is not None:
            ds = str(self.deepspeed)
            if ds not in ("zero1", "zero2", "zero3", "zero3_offload") and not ds.endswith(".json"):
                raise ConfigError(
                    f"{where}: `deepspeed` must be zero1, zero2, zero3, zero3_offload or a .json path, but got {ds!r}"
                )
        if not isinstance(self.freeze, list) or any(p not in ("vision", "merger", "llm") for p in self.freeze):
            raise ConfigError(f"{where}: `freeze` must be a list of vision, merger, llm, but got {self.freeze!r}")
        if set(self.freeze) >= {"vision", "merger", "llm"}:
            raise ConfigError(f"{where}: `freeze` names every part: nothing would be trained")
        if self.lora is not None:
            self.lora_spec()
            if self.freeze:
                raise ConfigError(f"{where}: `freeze` and `lora` together: with LoRA, say what trains in `lora`")
        if self.report_to not in ("auto", "tensorboard", "none"):
            raise ConfigError(f"{where}: `report_to` must be auto, tensorboard or none, but got {self.report_to!r}")

    # ------------------------------------------------------------------ derived values

    def gradient_accumulation_steps(self, world_size: int = 1) -> int:
        """Micro-batches per optimizer step so that ``per_device x world x accumulation = global``."""
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"{self.source}: `global_batch_size` ({self.global_batch_size}) is not a multiple of "
                f"per_device_batch_size x world_size ({self.per_device_batch_size} x {world_size})"
            )
        return self.global_batch_size // per_step

    def lrs(self) -> dict[str, float]:
        """Learning rates of the three parameter groups."""
        return {
            "vision": self.learning_rate if self.vision_lr is None else self.vision_lr,
            "merger": self.learning_rate if self.merger_lr is None else self.merger_lr,
            "llm": self.learning_rate,
        }

    def lora_spec(self) -> Any:
        """The validated :class:`~rscovlm_ref.train.lora.LoraSpec` of ``lora`` (``None`` without LoRA)."""
        from rscovlm_ref.train.lora import LoraSpec

        return None if self.lora is None else LoraSpec.from_dict(self.lora, f"{self.source}: lora")

    def mixture_path(self) -> Path:
        p = Path(self.mixture)
        if p.is_absolute():
            return p
        if self.source not in ("<dict>",):
            beside = Path(self.source).parent / p
            if beside.exists():
                return beside
        return p


def load_train_config(path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
    """Read and validate a training YAML file; ``overrides`` (non-``None`` values) replace its fields."""
    p = Path(path)
    data = dict(read_yaml(p, "training config") or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data, source=str(p))
