"""An evaluation suite: several benchmarks, one model load, one summary table.

A suite is a YAML file::

    model: outputs/run/final          # checkpoint folder or cached Hub id
    backend: vllm                     # or hf (default)
    out: outputs/eval/run1            # one folder per benchmark below it, and summary.md / summary.json
    min_pixels: 50176                 # defaults of every benchmark (224^2 .. 1008^2)
    max_pixels: 1016064
    benchmarks:
      - {name: dota_val512, dataset: data/dota512, config: dota, split: val}
      - {name: dota_val512_max, dataset: data/dota512, config: dota, split: val, max_mode: true}
      - {name: lrsvqa, dataset: data/lrs_vqa, split: test}
      - {name: lrsvqa_no_zoom, dataset: data/lrs_vqa, split: test, zoom: false}

Every benchmark runs :func:`~rscovlm_ref.infer.evaluate.evaluate_dataset` into
``out/<name>`` (so each one resumes on its own), then ``summary.md`` and
``summary.json`` list each benchmark's headline numbers (:func:`headline`).
Relative paths resolve against the suite file's folder.

Example:
    >>> suite = SuiteConfig.from_dict({"model": "m", "out": "o", "benchmarks": [{"name": "a", "dataset": "d"}]})
    >>> suite.benchmarks[0].split, suite.benchmarks[0].max_pixels
    ('test', 1016064)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rscovlm_ref.data.mixture import ConfigError, read_yaml
from rsformat.render import RenderFrame, RenderStyle

__all__ = ["Benchmark", "SuiteConfig", "headline", "load_suite", "run_suite", "summary_table"]


@dataclass
class Benchmark:
    """One dataset split to evaluate, and how (see :func:`~rscovlm_ref.infer.evaluate.evaluate_dataset`)."""

    name: str
    dataset: str
    config: str | None = None
    split: str = "test"
    image_root: str | None = None
    style: str | None = None  # "plain-quad", "json-hbb"...; default by family
    min_pixels: int = 224 * 224
    max_pixels: int = 1008 * 1008
    max_mode: bool = False
    zoom: bool = True
    no_zoom_categories: list[str] = field(default_factory=lambda: ["count"])
    limit: int | None = None
    preset: str = "mmrotate"
    grounding_preset: str = "rscovlm"
    matcher: str = "exact"
    merge_patches: bool = False

    def frame(self) -> RenderFrame:
        low = self.max_pixels if self.max_mode else self.min_pixels
        return RenderFrame.smart(low, self.max_pixels)

    def render_style(self) -> RenderStyle | None:
        return None if self.style is None else RenderStyle.parse(self.style)


_SHARED = (
    "min_pixels", "max_pixels", "zoom", "no_zoom_categories", "preset", "grounding_preset", "matcher", "limit", "split",
)  # fmt: skip


@dataclass
class SuiteConfig:
    """The suite file: the model, the backend, where results go, and the benchmarks."""

    model: str
    out: str
    benchmarks: list[Benchmark]
    backend: str = "hf"
    batch_size: int = 8
    max_new_tokens: int = 1024
    max_zoom_rounds: int = 1
    device: str | None = None
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> SuiteConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: a suite must be a mapping, but got {type(d).__name__}")
        own = {f.name for f in fields(cls)} - {"source", "benchmarks"}
        extra = sorted(set(d) - own - set(_SHARED) - {"benchmarks"})
        if extra:
            raise ConfigError(f"{source}: unknown field(s) {extra}; expected some of {sorted(own | set(_SHARED))}")
        for key in ("model", "out"):
            if not isinstance(d.get(key), str) or not d.get(key):
                raise ConfigError(f"{source}: `{key}` is required and must be a non-empty string")
        items = d.get("benchmarks")
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{source}: `benchmarks` must be a non-empty list")
        if d.get("backend", "hf") not in ("hf", "vllm"):
            raise ConfigError(f"{source}: `backend` must be 'hf' or 'vllm', but got {d.get('backend')!r}")
        defaults = {k: d[k] for k in _SHARED if k in d}
        allowed = {f.name for f in fields(Benchmark)}
        benchmarks: list[Benchmark] = []
        for i, item in enumerate(items):
            where = f"{source}: benchmarks[{i}]"
            if not isinstance(item, Mapping):
                raise ConfigError(f"{where} must be a mapping, but got {type(item).__name__}")
            where = f"{where} ({item.get('name', '?')})"
            unknown = sorted(set(item) - allowed)
            if unknown:
                raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(allowed)}")
            for key in ("name", "dataset"):
                if not isinstance(item.get(key), str) or not item.get(key):
                    raise ConfigError(f"{where}: `{key}` is required and must be a non-empty string")
            bench = Benchmark(**{**defaults, **item})
            _check_benchmark(bench, where)
            benchmarks.append(bench)
        names = [b.name for b in benchmarks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(f"{source}: benchmark names must differ (each gets its own folder): {duplicated}")
        suite = cls(**{k: v for k, v in d.items() if k in own}, benchmarks=benchmarks, source=source)
        for name in ("batch_size", "max_new_tokens"):
            if not isinstance(getattr(suite, name), int) or getattr(suite, name) <= 0:
                raise ConfigError(f"{source}: `{name}` must be a positive integer")
        if not isinstance(suite.max_zoom_rounds, int) or suite.max_zoom_rounds < 0:
            raise ConfigError(f"{source}: `max_zoom_rounds` must be an integer >= 0")
        return suite


def _check_benchmark(b: Benchmark, where: str) -> None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (b.min_pixels, b.max_pixels)):
        raise ConfigError(f"{where}: `min_pixels` and `max_pixels` must be positive integers")
    if b.min_pixels > b.max_pixels:
        raise ConfigError(f"{where}: `min_pixels` ({b.min_pixels}) is above `max_pixels` ({b.max_pixels})")
    if b.limit is not None and (not isinstance(b.limit, int) or b.limit <= 0):
        raise ConfigError(f"{where}: `limit` must be a positive integer")
    if b.style is not None:
        try:
            RenderStyle.parse(b.style)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    from rsmetrics.detection.protocol import PRESETS
    from rsmetrics.grounding import GROUNDING_PRESETS

    if b.preset not in PRESETS:
        raise ConfigError(f"{where}: `preset` must be one of {sorted(PRESETS)}, but got {b.preset!r}")
    if b.grounding_preset not in GROUNDING_PRESETS:
        raise ConfigError(
            f"{where}: `grounding_preset` must be one of {sorted(GROUNDING_PRESETS)}, but got {b.grounding_preset!r}"
        )
    if not isinstance(b.no_zoom_categories, list):
        raise ConfigError(f"{where}: `no_zoom_categories` must be a list")


def load_suite(path: str | os.PathLike[str]) -> SuiteConfig:
    """Read and validate a suite file; relative ``dataset``, ``image_root``, ``model`` and ``out`` resolve
    against its folder (when that path exists there, for ``model``: it may be a Hub id)."""
    p = Path(path)
    suite = SuiteConfig.from_dict(read_yaml(p, "suite file") or {}, source=str(p))
    base = p.resolve().parent

    def here(value: str | None) -> str | None:
        if value is None or value.startswith("hf://") or Path(value).is_absolute():
            return value
        return str(base / value)

    model = suite.model if Path(suite.model).is_absolute() or not (base / suite.model).exists() else here(suite.model)
    benchmarks = [
        dataclasses.replace(b, dataset=here(b.dataset), image_root=here(b.image_root)) for b in suite.benchmarks
    ]
    return dataclasses.replace(suite, model=str(model), out=str(here(suite.out)), benchmarks=benchmarks)


def headline(metrics: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """The numbers a results table shows for one benchmark, ``(name, value)``: accuracies, AP and F1 in
    [0, 1], CIDEr-D on its own scale (tables print every number times 100, as papers do)."""
    out: list[tuple[str, float | None]] = []
    det = metrics.get("detection")
    if det and "map" in det:
        out += [(det["metric"].replace("AP_nc", "mAP_nc"), det["map"]), ("mF1", det["mf1"])]
    grd = metrics.get("grounding")
    if grd:
        for thr, value in (grd.get("accuracy") or {}).items():
            out.append((f"Acc@{thr}", value))
    zoom = metrics.get("zoom") or {}
    if "open_ended" in zoom:
        out += [
            ("LRS-VQA OA", zoom["open_ended"]["overall_accuracy"]),
            ("LRS-VQA AA", zoom["open_ended"]["average_accuracy"]),
        ]
    if "multiple_choice" in zoom:
        out.append(("MCQ accuracy", zoom["multiple_choice"].get("accuracy")))
    for task, value in (metrics.get("conversation") or {}).items():
        if isinstance(value, Mapping) and "cider_d" in value:
            out += [(f"{task} CIDEr-D", value["cider_d"]), (f"{task} BLEU-4", value["bleu4"])]
        elif isinstance(value, Mapping):
            out.append((f"{task} accuracy", value.get("accuracy", value.get("overall_accuracy"))))
            average = value.get("average_accuracy")
            if isinstance(average, float) and average == average:  # per question type (NaN without types)
                out.append((f"{task} AA", average))
    return out


def summary_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table: one row per benchmark and headline number, percentages to two decimals."""
    rows = ["| benchmark | metric | value | records | errors |", "|---|---|---:|---:|---:|"]
    for name, metrics in results.items():
        if not metrics.get("complete", True):
            rows.append(
                f"| {name} | (other shards still running) | | {metrics.get('predicted')}/{metrics.get('records')} | |"
            )
            continue
        numbers = headline(metrics) or [("(no score)", None)]
        for metric, value in numbers:
            shown = "n/a" if value is None else f"{100 * value:.2f}"
            rows.append(f"| {name} | {metric} | {shown} | {metrics.get('records')} | {metrics.get('errors')} |")
    return "\n".join(rows)


def run_suite(
    suite: SuiteConfig, *, overwrite: bool = False, quiet: bool = False, backend: Any = None
) -> dict[str, Any]:
    """Evaluate every benchmark of ``suite`` with one backend; write ``summary.md`` and ``summary.json``.

    ``backend``: an already built backend (default: built from ``suite.backend`` and ``suite.model``).
    """
    from rscovlm_ref.infer.backends import HFBackend, VLLMBackend
    from rscovlm_ref.infer.engine import InferenceEngine
    from rscovlm_ref.infer.evaluate import evaluate_dataset, write_metrics
    from rsmetrics.io._common import atomic_write_text

    if backend is None:
        budget_low = min(b.min_pixels if not b.max_mode else b.max_pixels for b in suite.benchmarks)
        budget_high = max(b.max_pixels for b in suite.benchmarks)
        if suite.backend == "vllm":
            backend = VLLMBackend(
                suite.model, max_new_tokens=suite.max_new_tokens, max_images=suite.max_zoom_rounds + 1
            )
        else:
            backend = HFBackend.from_pretrained(
                suite.model, device=suite.device, min_pixels=budget_low, max_pixels=budget_high,
                max_new_tokens=suite.max_new_tokens, batch_size=suite.batch_size,
            )  # fmt: skip
    engine = InferenceEngine(backend, max_zoom_rounds=suite.max_zoom_rounds)
    out = Path(suite.out)
    results: dict[str, dict[str, Any]] = {}
    for bench in suite.benchmarks:
        if not quiet:
            print(f"== {bench.name}: {bench.dataset} ({bench.config or 'its config'}, {bench.split})", flush=True)
        results[bench.name] = evaluate_dataset(
            engine, bench.dataset, out / bench.name, config=bench.config, split=bench.split,
            image_root=bench.image_root, limit=bench.limit, frame=bench.frame(), style=bench.render_style(),
            zoom=bench.zoom, no_zoom_categories=tuple(bench.no_zoom_categories), batch_size=suite.batch_size,
            preset=bench.preset, matcher=bench.matcher, quiet=quiet, model=suite.model, overwrite=overwrite,
            merge_patches=bench.merge_patches, grounding_preset=bench.grounding_preset,
        )  # fmt: skip
    table = summary_table(results)
    summary = {
        "model": suite.model,
        "suite": suite.source,
        "benchmarks": {
            name: {"headline": dict(headline(m)), "complete": m.get("complete", True)} for name, m in results.items()
        },
    }
    write_metrics(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", f"# {suite.model}\n\n{table}\n")
    return {"results": results, "table": table, "summary": json.loads(json.dumps(summary, default=str))}
