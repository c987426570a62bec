"""The reference trainer: ``transformers.Trainer`` with our optimizer groups, loss and data order.

* **Optimizer groups** (:func:`param_groups`): AdamW over three parts, each with its
  own learning rate: the vision tower (``model.visual`` without the merger), the
  merger (``model.visual.merger``) and the language model (everything else,
  ``lm_head`` included). Weight decay (0.1) everywhere except norms and biases.
* **Loss** (:func:`token_sum_loss`): the summed cross-entropy of the supervised
  tokens divided by ``num_items_in_batch``, the supervised-token count of the
  whole global batch (all gradient-accumulation micro-batches and all ranks).
  That is a true token mean over the global batch, the same whether samples are
  packed or padded and whatever the accumulation split (Qwen2.5-VL declares
  ``accepts_loss_kwargs = False``, so the stock Trainer averaged per micro-batch).
* **Selective logits**: the LM head runs only on positions whose next token is
  supervised, ``model.lm_head(model.model(...).last_hidden_state[keep])`` (any
  transformers 5.x), or ``logits_to_keep=keep`` through a DDP/DeepSpeed wrapper.
  ``use_cache`` is always ``False`` (a cache disables the packed-sequence mask).
* **Data order**: our :class:`~rscovlm_ref.data.dataset.MixtureSampler` (already
  sharded by rank) drives the DataLoader; accelerate does not reshard it. Resuming
  replays the sampler and skips the trained batches, and every sample is a pure
  function of its key, so a resumed run trains on exactly the same samples.
* **Data counts**: each batch carries what the data engine skipped or fixed to
  build it (``data_stats``, made in whichever DataLoader worker built it); the
  trainer pops it, keeps running totals (:attr:`RSCoVLMTrainer.data_stats`),
  sums them over ranks for the logs (``data/<reason>``), and saves them in each
  checkpoint (``data_stats.json``) so a resumed run goes on counting.
* **Checkpoints**: a folder is complete once its ``trainer_state.json`` exists
  (the Trainer writes it last); :func:`latest_checkpoint` skips folders a kill
  left half-written.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from rscovlm_ref.data.dataset import DATA_STAT_KEYS
from rscovlm_ref.data.encode import IGNORE_INDEX

__all__ = [
    "JsonlLogCallback",
    "RSCoVLMTrainer",
    "freeze_parts",
    "latest_checkpoint",
    "param_groups",
    "part_of",
    "selective_logits",
    "token_sum_loss",
]

logger = logging.getLogger(__name__)

DATA_STATS_NAME = "data_stats.json"
TRAINER_STATE_NAME = "trainer_state.json"


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The newest complete ``checkpoint-N`` folder of ``output_dir``, or ``None``.

    A folder without a readable ``trainer_state.json`` (written last by the
    Trainer) was cut short by a kill; it is skipped with a warning, and the
    resumed run writes it again when it gets there.
    """
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        try:
            json.loads((folder / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("skipping %s: no complete %s (a save that was interrupted)", folder, TRAINER_STATE_NAME)
            continue
        return str(folder)
    return None


def part_of(name: str) -> str:
    """``"vision"``, ``"merger"`` or ``"llm"`` for a parameter name of Qwen2.5-VL."""
    if ".visual.merger." in f".{name}" or name.startswith("visual.merger."):
        return "merger"
    if ".visual." in f".{name}" or name.startswith("visual."):
        return "vision"
    return "llm"


def freeze_parts(model: nn.Module, parts: Iterable[str]) -> int:
    """Stop training the named parts (``"vision"``, ``"merger"``, ``"llm"``); returns how many parameters froze.

    Frozen parameters keep their weights and get no optimizer state
    (:func:`param_groups` leaves them out), which saves their gradient and
    AdamW memory (the vision tower of the 7B model is about 0.67B parameters).
    """
    chosen = set(parts)
    frozen = 0
    for name, p in model.named_parameters():
        if part_of(name) in chosen and p.requires_grad:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def _no_decay(name: str, param: nn.Parameter) -> bool:
    lowered = name.lower()
    return param.ndim < 2 or lowered.endswith(".bias") or "norm" in lowered or ".ln_" in lowered


def param_groups(model: nn.Module, lrs: dict[str, float], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: (vision, merger, llm) x (decay, no decay); empty groups are left out.

    Each group carries ``name`` (e.g. ``"vision/no_decay"``), ``lr`` and ``weight_decay``.
    Frozen parameters are left out; a parameter shared by two names appears once.
    """
    seen: set[int] = set()
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        buckets.setdefault((part_of(name), _no_decay(name, p)), []).append(p)
    groups = []
    for part in ("vision", "merger", "llm"):
        for no_decay in (False, True):
            params = buckets.get((part, no_decay))
            if params:
                groups.append(
                    {
                        "name": f"{part}/{'no_decay' if no_decay else 'decay'}",
                        "params": params,
                        "lr": lrs[part],
                        "weight_decay": 0.0 if no_decay else weight_decay,
                    }
                )
    return groups


def selective_logits(
    model: nn.Module, inputs: dict[str, Any], keep: torch.Tensor, *, portable: bool = True
) -> torch.Tensor:
    """Logits ``(N, vocab)`` at the ``N`` positions of ``keep`` only.

    ``portable``: ``model.lm_head(model.model(...).last_hidden_state[keep])`` on
    the unwrapped model; else ``model(**inputs, logits_to_keep=keep)``, which
    goes through a DDP / DeepSpeed wrapper (boolean masks: transformers >= 5.24).
    """
    inputs = {**inputs, "use_cache": False}
    if portable:
        hidden = model.model(**inputs).last_hidden_state
        return model.lm_head(hidden[keep])
    out = model(**inputs, logits_to_keep=keep)
    return out.logits.reshape(-1, out.logits.shape[-1])


def token_sum_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
) -> torch.Tensor:
    """Summed cross-entropy over ``targets`` divided by the global batch's supervised-token count."""
    total = nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    denom = targets.numel() if num_items_in_batch is None else num_items_in_batch
    if torch.is_tensor(denom):
        denom = denom.to(total.device)
    return total / denom


class RSCoVLMTrainer(Trainer):
    """``transformers.Trainer`` with our optimizer groups, loss and data order (see the module doc).

    Args:
        lrs: learning rates ``{"vision", "merger", "llm"}`` (default: ``args.learning_rate`` for all).
        *args, **kwargs: as :class:`transformers.Trainer`; ``train_dataset`` must be a
            :class:`~rscovlm_ref.data.dataset.MixtureDataset` (or have a ``sampler``).
    """

    def __init__(self, *args: Any, lrs: dict[str, float] | None = None, **kwargs: Any) -> None:
        # compute_loss_func makes the Trainer count num_items_in_batch over the global batch
        kwargs.setdefault("compute_loss_func", self._loss_from_outputs)
        super().__init__(*args, **kwargs)
        self.lrs = lrs or {k: self.args.learning_rate for k in ("vision", "merger", "llm")}
        self.loss_is_scaled_for_ga = True
        self.data_stats: Counter[str] = Counter()
        """This rank's running data-engine counts (see the module doc)."""

    # ------------------------------------------------------------------ optimizer

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = model if model is not None else self.model
            groups = param_groups(target, self.lrs, self.args.weight_decay)
            self.optimizer = torch.optim.AdamW(
                groups,
                lr=self.args.learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
            )
        return self.optimizer

    # ------------------------------------------------------------------ loss

    @staticmethod
    def _loss_from_outputs(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        # used only if a caller bypasses compute_loss: full logits, same normalisation
        logits = outputs.logits[:, :-1]
        shift = labels[:, 1:].to(logits.device)
        keep = shift != IGNORE_INDEX
        return token_sum_loss(logits[keep], shift[keep], num_items_in_batch)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        inputs = dict(inputs)
        self.data_stats.update(inputs.pop("data_stats", None) or {})
        labels = inputs.pop("labels")
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        targets = labels[:, 1:][keep[:, :-1]]
        unwrapped = self.accelerator.unwrap_model(model)
        if unwrapped is model:
            # a peft model: the Qwen2.5-VL inside it (adapters injected) has .model and .lm_head
            core = unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped
            logits = selective_logits(core, inputs, keep, portable=True)
        else:
            logits = selective_logits(model, inputs, keep, portable=False)
        loss = token_sum_loss(logits, targets, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts every rank's tokens; DDP averages gradients over ranks
            loss = loss * self.accelerator.num_processes
        return (loss, {"logits": logits}) if return_outputs else loss

    # ------------------------------------------------------------------ data order

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        if self.train_dataset is None:
            raise ValueError("RSCoVLMTrainer: training requires a train_dataset")
        dataset = self.train_dataset
        sampler = getattr(dataset, "sampler", None)
        if sampler is None:
            return super().get_train_dataloader()
        workers = self.args.dataloader_num_workers
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=self._train_batch_size,
            sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers if workers else False,
            prefetch_factor=self.args.dataloader_prefetch_factor if workers else None,
            drop_last=self.args.dataloader_drop_last,
        )
        prepared = self.accelerator.prepare(loader)
        # the sampler already shards by rank: make accelerate's BatchSamplerShard a passthrough
        shard = getattr(prepared, "batch_sampler", None)
        if shard is not None and hasattr(shard, "num_processes") and getattr(shard, "batch_sampler", None) is not None:
            shard.num_processes = 1
            shard.process_index = 0
        return prepared

    # ------------------------------------------------------------------ resume

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load a checkpoint's weights, undoing the key renaming of ``save_pretrained``.

        transformers 5.x saves Qwen2.5-VL under its original key names
        (``visual.*``, ``model.layers.*``) but ``Trainer._load_from_checkpoint``
        loads the file without converting them back, so a resumed run silently
        kept its fresh weights (every key missing). Here the saved names are
        mapped back to the model's before ``load_state_dict``.
        """
        import os

        import safetensors.torch

        target = model if model is not None else self.model
        single = os.path.join(resume_from_checkpoint, "model.safetensors")
        index = single + ".index.json"
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or not (os.path.isfile(single) or os.path.isfile(index)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        if os.path.isfile(single):
            files = [single]
        else:
            shards = json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"].values()
            files = [os.path.join(resume_from_checkpoint, f) for f in sorted(set(shards))]
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(safetensors.torch.load_file(f, device="cpu"))
        own = target.state_dict()
        rename: dict[str, str] = {}
        try:
            from transformers.core_model_loading import revert_weight_conversion

            by_id = {id(v): k for k, v in own.items()}
            for saved, tensor in revert_weight_conversion(target, dict(own)).items():
                if id(tensor) in by_id:
                    rename[saved] = by_id[id(tensor)]
        except (ImportError, AttributeError, TypeError):  # older transformers: names are saved as they are
            pass
        result = target.load_state_dict({rename.get(k, k): v for k, v in state.items()}, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(
                f"resume from {resume_from_checkpoint}: {len(result.missing_keys)} missing keys "
                f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected "
                f"(e.g. {result.unexpected_keys[:3]})"
            )

    # ------------------------------------------------------------------ logging

    def global_data_stats(self) -> dict[str, int]:
        """:attr:`data_stats` summed over all ranks (a collective call: every rank must make it).

        The keys of :data:`~rscovlm_ref.data.dataset.DATA_STAT_KEYS` are summed;
        other keys (a custom dataset's) are this rank's own.
        """
        totals = dict(self.data_stats)
        if self.accelerator.num_processes > 1:
            local = torch.tensor([float(self.data_stats.get(k, 0)) for k in DATA_STAT_KEYS], device=self.args.device)
            summed = self.accelerator.reduce(local, reduction="sum")
            totals.update({k: int(v) for k, v in zip(DATA_STAT_KEYS, summed.tolist())})
        return {k: v for k, v in totals.items() if v}

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            stats = self.global_data_stats()
            logs = {**logs, **{f"data/{k}": float(v) for k, v in sorted(stats.items())}}
        super().log(logs, *args, **kwargs)

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        # written before the Trainer's files, so trainer_state.json stays the last file of a complete folder
        stats = self.global_data_stats()
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{DATA_STATS_NAME}.tmp"
            tmp.write_text(json.dumps(stats, sort_keys=True), encoding="utf-8")
            os.replace(tmp, folder / DATA_STATS_NAME)
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train``; ``resume_from_checkpoint=True`` takes the newest *complete* checkpoint."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = latest_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise FileNotFoundError(f"resume: no complete checkpoint-* folder in {self.args.output_dir}")
        if isinstance(resume_from_checkpoint, (str, os.PathLike)):
            saved = Path(resume_from_checkpoint) / DATA_STATS_NAME
            self.data_stats = Counter()
            if self.args.process_index == 0 and saved.is_file():
                # the totals of every rank so far; the other ranks count on from zero
                self.data_stats.update(json.loads(saved.read_text(encoding="utf-8")))
        return super().train(resume_from_checkpoint, *args, **kwargs)


class JsonlLogCallback(TrainerCallback):
    """Writes every log to ``<output_dir>/train_log.jsonl`` and prints one progress line per training log."""

    def __init__(self, output_dir: str | Path, *, echo: bool = True) -> None:
        self.path = Path(output_dir) / "train_log.jsonl"
        self.echo = echo
        self.start = time.perf_counter()
        self.start_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()
        self.start_step = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, "epoch": state.epoch, **logs}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=float) + "\n")
        if self.echo and "loss" in logs:
            elapsed = time.perf_counter() - self.start
            done = state.global_step - self.start_step
            rate = done / elapsed if elapsed > 0 else 0.0
            skipped = {k[5:]: int(v) for k, v in logs.items() if k.startswith("data/") and k != "data/samples" and v}
            extra = f"  skipped {skipped}" if skipped else ""
            left = max(state.max_steps - state.global_step, 0)
            eta = time.strftime("%H:%M:%S", time.gmtime(left / rate)) if rate > 0 else "?"
            days = int(left / rate // 86400) if rate > 0 else 0
            print(
                f"step {state.global_step:>5}/{state.max_steps}  loss {logs['loss']:.4f}  "
                f"lr {logs.get('learning_rate', 0.0):.2e}  grad_norm {logs.get('grad_norm', float('nan')):.3f}  "
                f"{rate:.2f} steps/s  eta {f'{days}d ' if days else ''}{eta}{extra}",
                flush=True,
            )


def losses_from_log(history: Iterable[dict[str, Any]]) -> dict[int, float]:
    """``{step: loss}`` of a Trainer ``state.log_history``."""
    return {int(h["step"]): float(h["loss"]) for h in history if "loss" in h and "step" in h}
