"""Build and run a training job from a :class:`~rscovlm_ref.train.config.TrainConfig`.

:func:`build_trainer` loads the processor and the model, opens the mixture as a
:class:`~rscovlm_ref.data.dataset.MixtureDataset` sharded by rank, and returns
an :class:`~rscovlm_ref.train.trainer.RSCoVLMTrainer`; :func:`train` runs it
(optionally resuming from a checkpoint) and saves the final model and processor
(with LoRA: the adapter in ``final/`` and the merged model in ``final_merged/``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from rscovlm_ref.train.config import TrainConfig
from rscovlm_ref.train.trainer import latest_checkpoint

__all__ = ["build_trainer", "latest_checkpoint", "load_model", "load_processor", "train", "training_arguments"]

logger = logging.getLogger(__name__)


def load_processor(cfg: TrainConfig) -> Any:
    """The processor: the tiny offline one for ``model: tiny``, else the model's (video processor dropped)."""
    from rscovlm_ref import testing

    name = cfg.processor or cfg.model
    if name == "tiny":
        return testing.tiny_qwen25vl_processor(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    cls = testing.ImageOnlyQwen2_5_VLProcessor
    proc = cls.from_pretrained(name)
    proc.image_processor.size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    return proc


def load_model(cfg: TrainConfig, processor: Any) -> Any:
    """The model to fine-tune in full (the tiny random one for ``model: tiny``), with ``use_cache`` off."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from rscovlm_ref import testing
    from rscovlm_ref.train.deepspeed import apply_liger, resolve_attn_implementation

    attn = resolve_attn_implementation(cfg.attn_implementation)
    if cfg.model == "tiny":
        model = testing.tiny_qwen25vl(
            seed=cfg.seed, attn_implementation=attn, config=testing.tiny_qwen25vl_config(processor.tokenizer)
        )
    else:
        dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.model, dtype=dtype, attn_implementation=attn)
    # the text model reads text_config.use_cache: with a cache the packed-sequence mask is not built
    model.config.use_cache = False
    if getattr(model.config, "text_config", None) is not None:
        model.config.text_config.use_cache = False
    if cfg.use_liger:
        apply_liger(model)
    model.train()
    return model


def _report_to(cfg: TrainConfig) -> list[str]:
    if cfg.report_to == "none":
        return []
    has_tb = importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None
    if cfg.report_to == "tensorboard" and not has_tb:
        raise RuntimeError("report_to: tensorboard needs the tensorboard package (pip install tensorboard)")
    return ["tensorboard"] if has_tb else []


def training_arguments(cfg: TrainConfig, **overrides: Any) -> Any:
    """``transformers.TrainingArguments`` of ``cfg`` (transformers 5.x names)."""
    import torch
    from transformers import TrainingArguments

    from rscovlm_ref.train.deepspeed import write_deepspeed_config

    world = int(os.environ.get("WORLD_SIZE", "1"))
    kwargs: dict[str, Any] = dict(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps(world),
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio (warmup_ratio is gone in 5.x)
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps,
        bf16=cfg.bf16,
        tf32=cfg.tf32 if torch.cuda.is_available() else None,
        activation_checkpointing=cfg.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.activation_checkpointing else None,
        average_tokens_across_devices=True,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        report_to=_report_to(cfg),
        logging_dir=None,
        remove_unused_columns=False,
        dataloader_num_workers=cfg.dataloader_num_workers,
        deepspeed=write_deepspeed_config(cfg.deepspeed, cfg.output_dir) if cfg.deepspeed else None,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )
    kwargs.pop("logging_dir")
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def build_trainer(
    cfg: TrainConfig,
    *,
    model: Any = None,
    processor: Any = None,
    callbacks: list[Any] | None = None,
    echo: bool = True,
    **argument_overrides: Any,
) -> Any:
    """The :class:`RSCoVLMTrainer` of ``cfg`` (model and processor loaded unless given)."""
    from rscovlm_ref.data.collate import Collator
    from rscovlm_ref.data.dataset import MixtureDataset
    from rscovlm_ref.data.mixture import load_mixture
    from rscovlm_ref.train.trainer import JsonlLogCallback, RSCoVLMTrainer

    args = training_arguments(cfg, **argument_overrides)
    processor = processor if processor is not None else load_processor(cfg)
    model = model if model is not None else load_model(cfg, processor)
    if cfg.freeze:
        from rscovlm_ref.train.trainer import freeze_parts

        frozen = freeze_parts(model, cfg.freeze)
        logger.info("froze %s: %d parameters", ", ".join(cfg.freeze), frozen)
    if cfg.lora is not None:
        from rscovlm_ref.train.lora import apply_lora

        model = apply_lora(model, cfg.lora_spec())
    mixture_path = cfg.mixture_path()
    mixture = load_mixture(mixture_path)
    base = Path(cfg.data_root) if cfg.data_root else mixture_path.parent
    dataset = MixtureDataset(
        mixture,
        processor,
        base=base,
        max_length=cfg.max_length,
        min_pixels=cfg.min_pixels,
        max_pixels=cfg.max_pixels,
        rank=args.process_index,
        world_size=args.world_size,
    )
    pad = processor.tokenizer.pad_token_id
    collator = Collator("packed" if cfg.packing else "padded", pad_token_id=0 if pad is None else int(pad))
    trainer = RSCoVLMTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=processor,
        callbacks=[JsonlLogCallback(cfg.output_dir, echo=echo), *(callbacks or [])],
        lrs=cfg.lrs(),
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # JsonlLogCallback prints one line per log instead
    return trainer


def train(cfg: TrainConfig, *, resume: str | bool | None = None, save_final: bool = True, **kwargs: Any) -> Any:
    """Run training; ``resume``: a checkpoint folder, or ``True`` for the newest in ``output_dir``.

    Returns the trainer (its ``state.log_history`` holds the losses).
    """
    trainer = build_trainer(cfg, **kwargs)
    trainer.train(resume_from_checkpoint=True if resume is True else resume or None)
    if save_final:
        final = Path(cfg.output_dir) / "final"
        trainer.save_model(str(final))
        if cfg.lora is not None and trainer.args.should_save:
            # final/ holds the adapter; final_merged/ a plain checkpoint for inference and vLLM
            from rscovlm_ref.train.lora import merge_lora

            merge_lora(trainer.model, Path(cfg.output_dir) / "final_merged", trainer.processing_class)
    return trainer
