"""rscovlm-ref: train, evaluate and run the reference RSCoVLM model; prepare the CPU example data.

Usage::

    rscovlm-ref prepare-example outputs/cpu_example_data
    rscovlm-ref train rscovlm_ref/configs/cpu_example.yaml
    rscovlm-ref train rscovlm_ref/configs/cpu_example.yaml --resume        # newest checkpoint-N
    rscovlm-ref train CONFIG --resume outputs/run/checkpoint-200
    rscovlm-ref eval outputs/cpu_example/final outputs/cpu_example_data/dataset --config dota --split val \
        --out outputs/eval/dota                                                  # AP_nc, mF1
    rscovlm-ref eval CHECKPOINT LRS_VQA_DATASET --backend vllm --out outputs/eval/lrsvqa  # Zoom-in Chain
    torchrun --nproc_per_node 8 -m rscovlm_ref.cli eval CHECKPOINT DATASET --out DIR     # one shard per GPU
    rscovlm-ref eval-suite suite.yaml          # several benchmarks, one model load, summary.md
    rscovlm-ref detect CHECKPOINT scene.png --classes plane,ship --patch-size 1024 --plot dets.png
    rscovlm-ref ground CHECKPOINT scene.png "the white ship" --plot box.png
    rscovlm-ref ask CHECKPOINT big_scene.png "What color is the roof?" --zoom

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
    final = os.path.join(cfg.output_dir, "final_merged" if cfg.lora is not None else "final")
    if cfg.model == "tiny":
        # the checkpoint loads back
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(final)
        model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
        live = dict(model.named_parameters())
        diff = max((p.detach() - live[n].detach().cpu()).abs().max().item() for n, p in loaded.named_parameters())
        n = sum(p.numel() for p in loaded.parameters())
        print(f"checkpoint {final} loads back: {n} parameters, max |diff| {diff:.1e}")
        del torch
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rscovlm_ref.infer.backends import HFBackend, VLLMBackend
    from rscovlm_ref.infer.engine import InferenceEngine
    from rscovlm_ref.infer.evaluate import evaluate_dataset
    from rsformat.render import RenderFrame, RenderStyle

    if args.max_mode:
        frame = RenderFrame.smart(args.max_pixels, args.max_pixels)
    else:
        frame = RenderFrame.smart(args.min_pixels, args.max_pixels)
    style = RenderStyle.parse(args.style) if args.style else None
    start = time.perf_counter()
    if args.backend == "vllm":
        backend: object = VLLMBackend(
            args.model, max_new_tokens=args.max_new_tokens, max_images=args.max_zoom_rounds + 1
        )
    else:
        backend = HFBackend.from_pretrained(
            args.model, device=args.device, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        )  # fmt: skip
    engine = InferenceEngine(backend, max_zoom_rounds=args.max_zoom_rounds)  # type: ignore[arg-type]
    metrics = evaluate_dataset(
        engine, args.dataset, args.out, config=args.config, split=args.split, image_root=args.image_root,
        limit=args.limit, frame=frame, style=style, zoom=not args.no_zoom,
        no_zoom_categories=tuple(args.no_zoom_category), batch_size=args.batch_size, preset=args.preset,
        matcher=args.matcher, model=args.model, overwrite=args.overwrite, merge_patches=args.merge_patches,
        grounding_preset=args.grounding_preset,
    )  # fmt: skip
    if not metrics["complete"]:
        k, n = metrics["shard"]
        print(
            f"shard {k} of {n} done ({metrics['run']['written']} records now); {metrics['predicted']}/"
            f"{metrics['records']} answered so far: the last shard to finish writes {args.out}/metrics.json "
            "(or rerun this command once all are done)"
        )
        return 0
    print(_summary(metrics, time.perf_counter() - start, args.out))
    return 0


def _summary(metrics: dict, elapsed: float, out: str) -> str:
    from rscovlm_ref.infer.suite import headline

    run = metrics["run"]
    lines = [
        f"{metrics['predicted']}/{metrics['records']} records predicted in {elapsed:.1f} s "
        f"({run['written']} now, {run['skipped_done']} from an earlier run; errors {run['errors'] or 0}; "
        f"engine {run['engine']})"
    ]
    lines += [f"{name}: {'n/a' if value is None else f'{100 * value:.2f}'}" for name, value in headline(metrics)]
    det = metrics.get("detection")
    if det:
        parse = det["parse"]
        lines.append(
            f"detection parsing: {parse['boxes']} boxes, {parse['unparsed_candidates']} unreadable, "
            f"unknown labels {parse['unknown_labels']}" + (f"; {det['note']}" if "note" in det else "")
        )
        if det.get("table"):
            lines.append(det["table"])
        if det.get("plot"):
            lines.append(f"per-class AP and F1: {det['plot']}")
    merged = metrics.get("merged")
    if merged:
        lines.append(
            f"merged {merged['patches']} patches into {merged['images']} images: {merged['detections']} detections "
            f"({merged['detections_before_nms']} before NMS), {merged['files']} Task1 files in {merged['task1_dir']}"
        )
    zoom = metrics.get("zoom")
    if zoom:
        lines.append(f"zoom chain: {zoom['zoom']}")
    if run["engine"].get("truncated"):
        lines.append(
            f"warning: {run['engine']['truncated']} answers stopped at --max-new-tokens: raise it (dense detection "
            "answers are long)"
        )
    lines.append(f"written: {out}/predictions*.jsonl, {out}/metrics.json")
    return "\n".join(lines)


def _predictor(args: argparse.Namespace) -> object:
    from rscovlm_ref.infer.predictor import Predictor

    kwargs: dict = {"max_new_tokens": args.max_new_tokens}
    if args.backend == "hf":
        kwargs["device"] = args.device
    return Predictor.from_pretrained(
        args.model, backend=args.backend, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
        max_zoom_rounds=args.max_zoom_rounds, **kwargs,
    )  # fmt: skip


def _ask(args: argparse.Namespace) -> int:
    answer = _predictor(args).ask(args.image, args.question, zoom=args.zoom, max_mode=args.max_mode)  # type: ignore[attr-defined]
    print(answer.text)
    if args.zoom:
        print(f"[zoomed into {answer.zooms or 'nothing'}; status {answer.status}]", file=sys.stderr)
    return 0


def _ground(args: argparse.Namespace) -> int:
    from rscovlm_ref.infer.predictor import draw_detections

    out = _predictor(args).ground(args.image, args.expression, style=args.style, max_mode=args.max_mode)  # type: ignore[attr-defined]
    print(f"{args.expression}: {out.hbb}" if out.hbb else f"no box in the answer: {out.answer.text!r}")
    if args.plot and out.quad:
        print(f"plot: {draw_detections(args.image, [out.quad], [args.expression], args.plot)}")
    return 0 if out.hbb else 1


def _detect(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from rscovlm_ref.infer.predictor import draw_detections
    from rsmetrics.io._common import atomic_write_json

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    start = time.perf_counter()
    out = _predictor(args).detect(  # type: ignore[attr-defined]
        args.image, classes, style=args.style, patch_size=args.patch_size, gap=args.gap, max_mode=args.max_mode
    )
    dets = out.detections
    counts = Counter(dets.labels)
    print(
        f"{len(dets.labels)} objects in {len(out.windows)} window(s), {time.perf_counter() - start:.1f} s: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )
    if out.unparsed or out.unknown_labels:
        print(f"left out: {out.unparsed} unreadable boxes, unknown labels {out.unknown_labels}")
    if out.truncated:
        print(f"warning: {out.truncated} window answers stopped at --max-new-tokens: raise it or tile smaller")
    if args.json:
        atomic_write_json(args.json, out.to_dict())
        print(f"json: {args.json}")
    else:
        print(json.dumps(out.to_dict()["objects"]))
    if args.plot:
        print(f"plot: {draw_detections(args.image, dets.boxes, list(dets.labels), args.plot)}")
    return 0


def _suite(args: argparse.Namespace) -> int:
    from rscovlm_ref.infer.suite import load_suite, run_suite

    suite = load_suite(args.suite)
    start = time.perf_counter()
    result = run_suite(suite, overwrite=args.overwrite)
    print(f"\n{result['table']}\n\n{len(suite.benchmarks)} benchmarks in {time.perf_counter() - start:.1f} s; "
          f"written: {suite.out}/summary.md, {suite.out}/summary.json")  # fmt: skip
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
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    model.add_argument("--device", default=None, help="hf backend device (default: cuda when available)")
    model.add_argument("--min-pixels", type=int, default=224 * 224)
    model.add_argument("--max-pixels", type=int, default=1008 * 1008)
    model.add_argument("--max-mode", action="store_true", help="show images at --max-pixels (the paper's Max Mode)")
    model.add_argument("--max-new-tokens", type=int, default=1024)
    model.add_argument("--max-zoom-rounds", type=int, default=1)
    a = sub.add_parser("ask", parents=[model], help="answer a question on an image (--zoom: the Zoom-in Chain)")
    a.add_argument("model")
    a.add_argument("image")
    a.add_argument("question")
    a.add_argument("--zoom", action="store_true")
    a.set_defaults(func=_ask)
    g = sub.add_parser("ground", parents=[model], help="the box of a referring expression in an image")
    g.add_argument("model")
    g.add_argument("image")
    g.add_argument("expression")
    g.add_argument("--style", default="plain-hbb")
    g.add_argument("--plot", default=None, help="write the image with the box to this PNG")
    g.set_defaults(func=_ground)
    d = sub.add_parser("detect", parents=[model], help="oriented detection on an image (tiled when large)")
    d.add_argument("model")
    d.add_argument("image")
    d.add_argument("--classes", required=True, help="comma-separated class names, e.g. plane,ship,harbor")
    d.add_argument("--style", default="plain-quad")
    d.add_argument("--patch-size", type=int, default=None, help="tile images larger than this (e.g. 1024)")
    d.add_argument("--gap", type=int, default=200, help="overlap of neighbouring tiles")
    d.add_argument("--json", default=None, help="write the detections to this JSON file")
    d.add_argument("--plot", default=None, help="write the image with the boxes to this PNG")
    d.set_defaults(func=_detect)
    e = sub.add_parser(
        "eval", parents=[model], help="answer an rsformat dataset split and score it with rsmetrics (resumable)"
    )
    e.add_argument("model", help="a checkpoint folder (e.g. a run's final/) or a cached Hub id")
    e.add_argument("dataset", help="an rsformat dataset folder")
    e.add_argument("--config", default=None, help="the dataset config (needed when it has several)")
    e.add_argument("--split", default="test")
    e.add_argument("--out", required=True, help="folder of predictions.jsonl and metrics.json")
    e.add_argument("--image-root", default=None, help="folder of the records' image paths (default: the dataset's)")
    e.add_argument("--style", default=None, help="plain-quad, json-hbb... (default: by family, the paper's)")
    e.add_argument("--no-zoom", action="store_true", help="plain QA on zoom records (no Zoom-in Chain)")
    e.add_argument("--no-zoom-category", action="append", default=None,
                   help="zoom-record categories asked without zooming (default: count; repeatable)")  # fmt: skip
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--limit", type=int, default=None, help="only the first N records")
    e.add_argument("--preset", default="mmrotate", help="detection protocol: mmrotate (AP_nc), dota or coco")
    e.add_argument("--grounding-preset", default="rscovlm", choices=("rscovlm", "vrsbench", "vhm"),
                   help="grounding IoU protocol (default: the paper's)")  # fmt: skip
    e.add_argument("--matcher", default="exact", help="VQA / LRS-VQA answer matcher (exact, wordnet...)")
    e.add_argument("--overwrite", action="store_true", help="start again instead of resuming --out")
    e.add_argument("--merge-patches", action="store_true",
                   help="detection on split patches: merge into full images, write DOTA Task1 files to OUT/task1")  # fmt: skip
    e.set_defaults(func=_eval)
    u = sub.add_parser("eval-suite", help="evaluate several benchmarks with one model load (a YAML suite)")
    u.add_argument("suite")
    u.add_argument("--overwrite", action="store_true", help="start every benchmark again instead of resuming")
    u.set_defaults(func=_suite)
    p = sub.add_parser("prepare-example", help="write and convert the synthetic data of the CPU example")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prepare)
    args = parser.parse_args(argv)
    if getattr(args, "no_zoom_category", "unset") is None:
        args.no_zoom_category = ["count"]
    from rscovlm_ref.data.mixture import ConfigError

    try:
        return int(args.func(args))
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as err:  # SetupMismatchError is one
        # the message names the file, record or field; RSCOVLM_REF_DEBUG=1 shows the traceback too
        print(f"error: {err}", file=sys.stderr)
        if os.environ.get("RSCOVLM_REF_DEBUG"):
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())
