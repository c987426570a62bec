"""rscovlm-ref: train the reference RSCoVLM model, prepare the CPU example data.

Usage::

    rscovlm-ref prepare-example outputs/cpu_example_data
    rscovlm-ref train rscovlm_ref/configs/cpu_example.yaml
    rscovlm-ref train rscovlm_ref/configs/cpu_example.yaml --resume        # newest checkpoint-N
    rscovlm-ref train CONFIG --resume outputs/run/checkpoint-200

Multi-GPU / multi-node: ``torchrun --nproc_per_node 8 --nnodes 4 ... -m rscovlm_ref.cli train CONFIG``
(or the ``deepspeed`` launcher); the data order is sharded by rank.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["main"]


def _train(args: argparse.Namespace) -> int:
    from rscovlm_ref.train.config import load_train_config
    from rscovlm_ref.train.run import train

    cfg = load_train_config(args.config, output_dir=args.output_dir, data_root=args.data_root, max_steps=args.max_steps)
    start = time.perf_counter()
    print(f"training {cfg.model} on {cfg.mixture_path()} -> {cfg.output_dir}", flush=True)
    trainer = train(cfg, resume=args.resume)
    elapsed = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    stats = trainer.global_data_stats()
    print(f"done: {trainer.state.global_step} steps in {elapsed:.1f} s; data {stats}")
    if losses:
        print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    final = os.path.join(cfg.output_dir, "final")
    if cfg.model == "tiny":
        # the checkpoint loads back
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(final)
        live = dict(trainer.model.named_parameters())
        diff = max((p.detach() - live[n].detach().cpu()).abs().max().item() for n, p in loaded.named_parameters())
        n = sum(p.numel() for p in loaded.parameters())
        print(f"checkpoint {final} loads back: {n} parameters, max |diff| {diff:.1e}")
        del torch
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from rscovlm_ref.example import prepare_example

    start = time.perf_counter()
    out = prepare_example(args.out, seed=args.seed)
    print(f"example dataset written to {out} in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rscovlm-ref", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from a YAML config")
    t.add_argument("config")
    t.add_argument("--resume", nargs="?", const=True, default=None, help="a checkpoint folder, or the newest one")
    t.add_argument("--output-dir", default=None)
    t.add_argument("--data-root", default=None, help="folder that the mixture's relative dataset paths resolve in")
    t.add_argument("--max-steps", type=int, default=None)
    t.set_defaults(func=_train)
    p = sub.add_parser("prepare-example", help="write and convert the synthetic data of the CPU example")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prepare)
    args = parser.parse_args(argv)
    from rscovlm_ref.data.mixture import ConfigError

    try:
        return int(args.func(args))
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
