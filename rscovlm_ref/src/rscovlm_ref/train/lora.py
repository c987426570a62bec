"""LoRA fine-tuning (optional ``peft``): a budget alternative to the paper's full fine-tuning.

A training config's ``lora`` block::

    lora:
      r: 64                 # rank
      alpha: 128            # scaling numerator (scale = alpha / r)
      dropout: 0.05
      parts: [llm]          # where adapters go: llm and/or vision (their linear layers)
      train_fully: [merger] # parts trained in full next to the adapters (saved with them)

:func:`apply_lora` wraps the model with ``peft`` adapters on the linear layers of
the chosen parts (``q/k/v/o`` and the MLP projections of the language model;
``qkv``, ``proj`` and the MLP of the vision blocks); every other weight is frozen
except the ``train_fully`` parts (``modules_to_save``, so they are saved with
the adapter). The trainer's parameter groups, loss and data order are
unchanged. The run's ``final/`` holds the adapter; :func:`merge_lora` writes a
plain checkpoint (``final_merged/``) that the inference engine and vLLM load like
any Qwen2.5-VL.

Example:
    >>> spec = LoraSpec.from_dict({"r": 8})
    >>> spec.alpha, spec.parts, spec.train_fully
    (16, ('llm',), ('merger',))
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rscovlm_ref.data.mixture import ConfigError

__all__ = ["LoraSpec", "apply_lora", "load_adapter_merged", "merge_lora", "peft_available"]

_LLM_LINEAR = (
    r"language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
)
_VISION_LINEAR = r"visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate_proj|up_proj|down_proj))"
_PARTS = ("llm", "vision")
_FULL = ("merger", "vision", "llm")


def peft_available() -> bool:
    return importlib.util.find_spec("peft") is not None


def _need_peft() -> None:
    if not peft_available():
        raise RuntimeError("LoRA needs the peft package: pip install 'rscovlm-ref[lora]' (or pip install peft)")


@dataclass(frozen=True)
class LoraSpec:
    """The ``lora`` block of a training config (see the module doc)."""

    r: int = 64
    alpha: int | None = None  # default 2 r
    dropout: float = 0.05
    parts: tuple[str, ...] = ("llm",)
    train_fully: tuple[str, ...] = ("merger",)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "lora") -> LoraSpec:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: must be a mapping, but got {type(d).__name__}")
        allowed = {"r", "alpha", "dropout", "parts", "train_fully"}
        extra = sorted(set(d) - allowed)
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {extra}; expected some of {sorted(allowed)}")
        r = d.get("r", 64)
        if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
            raise ConfigError(f"{where}: `r` must be a positive integer, but got {r!r}")
        alpha = d.get("alpha", 2 * r)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
            raise ConfigError(f"{where}: `alpha` must be a positive number, but got {alpha!r}")
        dropout = d.get("dropout", 0.05)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ConfigError(f"{where}: `dropout` must be in [0, 1), but got {dropout!r}")
        parts = tuple(d.get("parts", ("llm",)))
        if not parts or any(p not in _PARTS for p in parts):
            raise ConfigError(f"{where}: `parts` must list some of {list(_PARTS)}, but got {list(parts)!r}")
        full = tuple(d.get("train_fully", ("merger",)))
        if any(p not in _FULL for p in full) or set(full) & set(parts):
            raise ConfigError(
                f"{where}: `train_fully` must list parts of {list(_FULL)} without adapters, but got {list(full)!r}"
            )
        return cls(r=r, alpha=int(alpha), dropout=float(dropout), parts=parts, train_fully=full)

    def target_modules(self) -> str:
        """The regular expression of the linear layers that get adapters."""
        chosen = [{"llm": _LLM_LINEAR, "vision": _VISION_LINEAR}[p] for p in self.parts]
        return rf".*(?:{'|'.join(chosen)})"

    def modules_to_save(self) -> list[str]:
        """Module names trained in full (and saved with the adapter)."""
        names = {"merger": "merger", "vision": "visual", "llm": "language_model"}
        return [names[p] for p in self.train_fully]


def apply_lora(model: Any, spec: LoraSpec) -> Any:
    """``model`` wrapped by ``peft`` with adapters per ``spec`` (a ``PeftModel``); a clear error without peft."""
    _need_peft()
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha or 2 * spec.r,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules(),
        modules_to_save=spec.modules_to_save() or None,
        bias="none",
    )
    return get_peft_model(model, config)


def merge_lora(peft_model: Any, out_dir: str | os.PathLike[str], processor: Any = None) -> Path:
    """Write the merged model (adapters folded into the weights) as a plain checkpoint; returns its folder.

    The merge happens on the model given: call it after the adapter was saved.
    """
    out = Path(out_dir)
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(out)
    if processor is not None:
        processor.save_pretrained(out)
    return out


def load_adapter_merged(path: str | os.PathLike[str], **load_kwargs: Any) -> Any:
    """A Qwen2.5-VL with the adapter of ``path`` (a LoRA run's ``final/``) merged in, for inference.

    The base model is the adapter's ``base_model_name_or_path`` (a folder or a
    cached Hub id).

    Raises:
        RuntimeError: without peft, or when the base model is unknown.
    """
    _need_peft()
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise RuntimeError(
            f"{path}: the adapter does not name its base model; load the merged checkpoint (final_merged/) instead"
        )
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base, **load_kwargs)
    return PeftModel.from_pretrained(model, str(path)).merge_and_unload()
