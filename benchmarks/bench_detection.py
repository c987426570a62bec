"""Speed and peak memory of rsmetrics' detection AP against the reference evaluators.

One run generates one DOTA-val-sized synthetic workload (``make_detection_workload``:
5,500 patches of 512 px, ~30k GT quads, ~40k predictions), writes it once in the
DOTA devkit's file formats and as COCO JSON (not timed), then measures, each in a
fresh Python process:

* DOTA Task1 AP (``dota`` preset): ``dotadevkit``'s ``voc_eval`` over the 15
  classes at IoU 0.5, and over thresholds x classes at 0.50:0.95 (the devkit has
  no multi-threshold mode), against ``rsmetrics.evaluate_detection(..., "dota")``
  from in-memory objects and from the same files (``rsmetrics.io`` readers);
* COCO bbox AP on the horizontal boxes of the quads (``coco`` preset):
  pycocotools and faster-coco-eval ``COCOeval`` (load + evaluate + accumulate +
  summarize) against rsmetrics, from in-memory objects and from the same JSON files.

Wall time is the best of N runs (``time.perf_counter``); peak memory is the
process's peak resident set (``VmHWM``) during the timed runs, which includes the
interpreter, the imports and whatever input is held in memory. Per-class APs of
every tool are compared with the reference's.

Usage::

    .venv/bin/python benchmarks/bench_detection.py              # full scale, updates BENCHMARKS.md
    .venv/bin/python benchmarks/bench_detection.py --quick      # 300 patches, 1 run each, no file written
    .venv/bin/python benchmarks/bench_detection.py --images 2000 --repeat 5
    .venv/bin/python benchmarks/bench_detection.py --keep --workdir /tmp/wd --only rsmetrics
    .venv/bin/python benchmarks/bench_detection.py --workdir /tmp/wd --profile rsmetrics-dota@0.50:0.95
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import math
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import markers, write_section  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "bench_detection"
MARK_START, MARK_END = markers(SECTION)
RESULT_TAG = "@@BENCH_RESULT@@ "
COCO_RANGE = "0.50:0.95"

# row id -> (tool, task, input); the order is the order of the report
ROWS: dict[str, tuple[str, str, str]] = {
    "devkit@0.5": ("dotadevkit `voc_eval`", "DOTA Task1 AP, IoU 0.5", "files"),
    "rsmetrics-dota@0.5": ("rsmetrics `dota`", "DOTA Task1 AP, IoU 0.5", "memory"),
    "rsmetrics-dota-files@0.5": ("rsmetrics `dota` + `rsmetrics.io`", "DOTA Task1 AP, IoU 0.5", "files"),
    "devkit@0.50:0.95": ("dotadevkit `voc_eval`", "DOTA Task1 AP, IoU 0.50:0.95", "files"),
    "rsmetrics-dota@0.50:0.95": ("rsmetrics `dota`", "DOTA Task1 AP, IoU 0.50:0.95", "memory"),
    "rsmetrics-dota-files@0.50:0.95": ("rsmetrics `dota` + `rsmetrics.io`", "DOTA Task1 AP, IoU 0.50:0.95", "files"),
    "pycocotools": ("pycocotools `COCOeval`", "COCO bbox AP50:95", "memory"),
    "faster-coco-eval": ("faster-coco-eval `COCOeval_faster`", "COCO bbox AP50:95", "memory"),
    "rsmetrics-coco": ("rsmetrics `coco`", "COCO bbox AP50:95", "memory"),
    "pycocotools-files": ("pycocotools `COCOeval`", "COCO bbox AP50:95", "files"),
    "faster-coco-eval-files": ("faster-coco-eval `COCOeval_faster`", "COCO bbox AP50:95", "files"),
    "rsmetrics-coco-files": ("rsmetrics `coco` + `rsmetrics.io`", "COCO bbox AP50:95", "files"),
}
# the reference each row is compared with (speed and numbers)
REFERENCE = {
    "rsmetrics-dota@0.5": "devkit@0.5",
    "rsmetrics-dota-files@0.5": "devkit@0.5",
    "rsmetrics-dota@0.50:0.95": "devkit@0.50:0.95",
    "rsmetrics-dota-files@0.50:0.95": "devkit@0.50:0.95",
    "faster-coco-eval": "pycocotools",
    "rsmetrics-coco": "pycocotools",
    "faster-coco-eval-files": "pycocotools-files",
    "rsmetrics-coco-files": "pycocotools-files",
}
SLOW_ROWS = {"devkit@0.50:0.95"}  # ~1 min per run at full scale: fewer repeats


# =========================================================================== child side
# Everything below up to the parent side runs inside the fresh process of one row.
# Row code imports only what its tool needs, so each process's memory is its own.


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    kb = _proc_status_kb("VmRSS")
    return kb / 1024 if kb is not None else float("nan")


def _peak_mb() -> float:
    kb = _proc_status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return kb / 1024


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Null:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _quiet():
    """Silence the reference tools' prints (the devkit prints arrays per class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the devkit's 0/0 recall of classes without GT
        with contextlib.redirect_stdout(_Null()):  # type: ignore[type-var]
            yield


def _meta(wd: Path) -> dict[str, Any]:
    return json.loads((wd / "meta.json").read_text())


def _thresholds(meta: dict[str, Any], row: str) -> list[float]:
    return meta["thresholds_range"] if row.endswith("@0.50:0.95") else [0.5]


# --- each maker returns (setup, run): setup() is untimed and called before every run;
# --- run(state) returns (phases {name: seconds}, result)


def _make_devkit(row: str, wd: Path) -> tuple[Callable[[], Any], Callable[[Any], tuple[dict, dict]]]:
    from dotadevkit.evaluate.task1 import voc_eval

    meta = _meta(wd)
    classes, empty = meta["classes"], set(meta["classes_without_predictions"])
    thresholds = _thresholds(meta, row)
    det, ann, imageset = meta["devkit_paths"]

    def run(_: Any) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        ap = []
        with _quiet():
            for t in thresholds:  # what users do: the devkit evaluates one threshold per call
                row_ap = []
                for c in classes:
                    if c in empty:  # the devkit raises IndexError on an empty Task1 file
                        row_ap.append(0.0)
                        continue
                    _, _, v = voc_eval(det, ann, imageset, c, ovthresh=t, use_07_metric=True)
                    row_ap.append(float(v))
                ap.append(row_ap)
        return {"evaluate": time.perf_counter() - t0}, {"ap": ap}

    return lambda: None, run


def _dota_result(res: Any) -> dict:
    return {"ap": [[c.ap[ti] for c in res.classes] for ti in range(len(res.iou_thresholds))], "map": res.map}


CONSTRUCT_S: list[float] = []  # untimed: building the input objects of a memory row


def _load_objects(wd: Path) -> tuple[list[Any], list[Any]]:
    """The workload as rsmetrics objects, built from plain arrays (the build is timed apart)."""
    from rsmetrics.detection.types import ImageAnnotations, ImageDetections

    with open(wd / "workload.pkl", "rb") as f:
        raw_gts, raw_preds = pickle.load(f)
    raw = [(g.image_id, g.boxes, list(g.labels), g.difficult) for g in raw_gts]
    raw_p = [(d.image_id, d.boxes, list(d.labels), d.scores) for d in raw_preds]
    del raw_gts, raw_preds
    t0 = time.perf_counter()
    gts = [ImageAnnotations(i, b, labels, difficult=f) for i, b, labels, f in raw]
    preds = [ImageDetections(i, b, labels, scores=s) for i, b, labels, s in raw_p]
    CONSTRUCT_S.append(time.perf_counter() - t0)
    return gts, preds


def _make_rsmetrics_dota(row: str, wd: Path) -> tuple[Callable[[], Any], Callable[[Any], tuple[dict, dict]]]:
    from rsmetrics.detection.evaluate import evaluate_detection

    meta = _meta(wd)
    classes = meta["classes"]
    thr: Any = COCO_RANGE if row.endswith("@0.50:0.95") else 0.5

    if "-files" not in row:
        gts, preds = _load_objects(wd)

        def run(_: Any) -> tuple[dict, dict]:
            t0 = time.perf_counter()
            res = evaluate_detection(preds, gts, classes, "dota", iou_thresholds=thr)
            return {"evaluate": time.perf_counter() - t0}, _dota_result(res)

        return lambda: None, run

    from rsmetrics.io import read_dota_label_dir, read_task1_dir

    labels_dir = Path(meta["devkit_paths"][1]).parent
    task1_dir = Path(meta["devkit_paths"][0]).parent

    def run_files(_: Any) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        gts, _r1 = read_dota_label_dir(labels_dir)
        preds, _r2 = read_task1_dir(task1_dir, classes)
        t1 = time.perf_counter()
        res = evaluate_detection(preds, gts, classes, "dota", iou_thresholds=thr)
        return {"read": t1 - t0, "evaluate": time.perf_counter() - t1}, _dota_result(res)

    return lambda: None, run_files


def _make_cocoeval(row: str, wd: Path) -> tuple[Callable[[], Any], Callable[[Any], tuple[dict, dict]]]:
    import numpy as np

    if row.startswith("pycocotools"):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval

    meta = _meta(wd)
    gt_path, dt_path = meta["coco_paths"]
    from_files = row.endswith("-files")
    if from_files:
        setup: Callable[[], Any] = lambda: None  # noqa: E731
    else:
        gt_text, dt_text = Path(gt_path).read_text(), Path(dt_path).read_text()

        def setup() -> Any:  # fresh dicts every run: loadRes adds fields to the result dicts
            return json.loads(gt_text), json.loads(dt_text)

    def run(state: Any) -> tuple[dict, dict]:
        with _quiet():
            t0 = time.perf_counter()
            if from_files:
                coco = COCO(gt_path)
                res = coco.loadRes(dt_path)
            else:
                coco = COCO()
                coco.dataset = state[0]
                coco.createIndex()
                res = coco.loadRes(state[1])
            t1 = time.perf_counter()
            ev = COCOeval(coco, res, "bbox")
            ev.evaluate()
            t2 = time.perf_counter()
            ev.accumulate()
            t3 = time.perf_counter()
            ev.summarize()
            t4 = time.perf_counter()
        precision = ev.eval["precision"]  # (T, R, K, A, M)
        per_class = []
        for k in range(precision.shape[2]):
            p = precision[:, :, k, 0, -1]
            per_class.append(float(np.mean(p[p > -1])) if (p > -1).any() else float("nan"))
        result = {
            "ap": float(ev.stats[0]),
            "ap50": float(ev.stats[1]),
            "ap75": float(ev.stats[2]),
            "per_class": per_class,
        }
        return {"load": t1 - t0, "evaluate": t2 - t1, "accumulate": t3 - t2, "summarize": t4 - t3}, result

    return setup, run


def _coco_result(res: Any) -> dict:
    return {
        "ap": res.ap50_95,
        "ap50": res.ap50,
        "ap75": res.ap75,
        "per_class": [sum(c.ap) / len(c.ap) if c.num_gt else float("nan") for c in res.classes],
    }


def _make_rsmetrics_coco(row: str, wd: Path) -> tuple[Callable[[], Any], Callable[[Any], tuple[dict, dict]]]:
    from rsmetrics.detection.evaluate import evaluate_detection

    meta = _meta(wd)
    if not row.endswith("-files"):
        classes = meta["classes"]
        gts, preds = _load_objects(wd)

        def run(_: Any) -> tuple[dict, dict]:
            t0 = time.perf_counter()
            res = evaluate_detection(preds, gts, classes, "coco")
            return {"evaluate": time.perf_counter() - t0}, _coco_result(res)

        return lambda: None, run

    from rsmetrics.io import coco_index, read_coco_ground_truth, read_coco_results

    gt_path, dt_path = meta["coco_paths"]

    def run_files(_: Any) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        data = json.loads(Path(gt_path).read_text(encoding="utf-8"))
        gts, classes, _r = read_coco_ground_truth(data)
        preds = read_coco_results(dt_path, coco_index(data))
        t1 = time.perf_counter()
        res = evaluate_detection(preds, gts, classes, "coco")
        return {"read": t1 - t0, "evaluate": time.perf_counter() - t1}, _coco_result(res)

    return lambda: None, run_files


def _maker(row: str) -> Callable[[str, Path], tuple[Callable[[], Any], Callable[[Any], tuple[dict, dict]]]]:
    if row.startswith("devkit"):
        return _make_devkit
    if row.startswith("rsmetrics-dota"):
        return _make_rsmetrics_dota
    if row.startswith("rsmetrics-coco"):
        return _make_rsmetrics_coco
    return _make_cocoeval


def run_single(row: str, wd: Path, repeat: int) -> dict[str, Any]:
    """Prepare one row, run it ``repeat`` times; times, phases, result and memory."""
    t0 = time.perf_counter()
    setup, run = _maker(row)(row, wd)
    prep_s = time.perf_counter() - t0
    times, phases, peaks, deltas = [], [], [], []
    result: dict = {}
    reset_ok = True
    baseline = float("nan")
    for i in range(repeat):
        state = setup()
        gc.collect()
        base = _rss_mb()
        if i == 0:
            baseline = base
        reset_ok &= _reset_peak()
        t = time.perf_counter()
        ph, result = run(state)
        times.append(time.perf_counter() - t)
        peak = _peak_mb()
        phases.append(ph)
        peaks.append(peak)
        deltas.append(peak - base)
        del state
    best = min(range(repeat), key=times.__getitem__)
    return {
        "row": row,
        "repeat": repeat,
        "prep_s": prep_s,
        "times": times,
        "best_s": times[best],
        "phases": phases[best],
        "baseline_mb": baseline,
        "peak_mb": max(peaks),
        "delta_mb": max(deltas),
        "peak_reset": reset_ok,
        "construct_s": CONSTRUCT_S[0] if CONSTRUCT_S else None,
        "result": result,
    }


def profile_single(row: str, wd: Path, top: int = 15) -> str:
    """cProfile one run of a row: the ``top`` functions by cumulative time."""
    import cProfile
    import io
    import pstats

    setup, run = _maker(row)(row, wd)
    state = setup()
    run(state)  # warm-up (lazy imports, caches)
    prof = cProfile.Profile()
    prof.enable()
    run(state)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# =========================================================================== parent side


def prepare_workdir(wd: Path, images: int, seed: int) -> dict[str, Any]:
    """Generate the workload and write every tool's input files (not timed)."""
    meta_path = wd / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("images") == images and meta.get("seed") == seed:
            print(f"reusing the inputs in {wd}", flush=True)
            return meta
        raise SystemExit(f"{wd} holds inputs of another workload; pick an empty --workdir")

    import numpy as np

    from rsmetrics.detection.protocol import parse_iou_thresholds
    from rsmetrics.synthetic import DOTA_LIKE_CLASSES, make_detection_workload

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _reference import to_coco, write_devkit_inputs

    t0 = time.perf_counter()
    gts, preds = make_detection_workload(images, seed=seed)
    gen_s = time.perf_counter() - t0
    classes = list(DOTA_LIKE_CLASSES)
    wd.mkdir(parents=True, exist_ok=True)
    with open(wd / "workload.pkl", "wb") as f:
        pickle.dump((gts, preds), f, protocol=pickle.HIGHEST_PROTOCOL)
    t0 = time.perf_counter()
    det, ann, imageset = write_devkit_inputs(gts, preds, classes, wd / "dota")
    gt_json, dets = to_coco(gts, preds, classes)
    (wd / "coco").mkdir(exist_ok=True)
    (wd / "coco" / "gt.json").write_text(json.dumps(gt_json))
    (wd / "coco" / "dets.json").write_text(json.dumps(dets))
    write_s = time.perf_counter() - t0
    pred_classes = {label for d in preds for label in d.labels}
    size = sum(p.stat().st_size for p in wd.rglob("*") if p.is_file() and p.suffix in (".txt", ".json"))
    meta = {
        "images": images,
        "seed": seed,
        "classes": classes,
        "classes_without_predictions": [c for c in classes if c not in pred_classes],
        "thresholds_range": list(parse_iou_thresholds(COCO_RANGE)),
        "devkit_paths": [det, ann, imageset],
        "coco_paths": [str(wd / "coco" / "gt.json"), str(wd / "coco" / "dets.json")],
        "gt_objects": int(sum(len(g) for g in gts)),
        "difficult_gt": int(sum(int(np.count_nonzero(g.difficult)) for g in gts)),
        "predictions": int(sum(len(p) for p in preds)),
        "generate_s": gen_s,
        "write_s": write_s,
        "input_mb": size / 2**20,
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def unavailable(row: str) -> str | None:
    """Why a row cannot run here (a tool or an rsmetrics reader missing), else None."""
    import importlib

    need = {
        "devkit": [("dotadevkit.evaluate.task1", "voc_eval")],
        "rsmetrics-dota-files": [("rsmetrics.io", "read_dota_label_dir"), ("rsmetrics.io", "read_task1_dir")],
        "rsmetrics-coco-files": [
            ("rsmetrics.io", n) for n in ("read_coco_ground_truth", "read_coco_results", "coco_index")
        ],
        "pycocotools": [("pycocotools.cocoeval", "COCOeval")],
        "faster-coco-eval": [("faster_coco_eval", "COCOeval_faster")],
    }
    for prefix, names in need.items():
        if row.startswith(prefix):
            for module, name in names:
                try:
                    getattr(importlib.import_module(module), name)
                except (ImportError, AttributeError) as err:
                    return f"{module}.{name} not available ({type(err).__name__})"
    return None


def run_child(row: str, wd: Path, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--single", row, "--workdir", str(wd), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        return {"row": row, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1], "stderr": proc.stderr}
    return json.loads(lines[-1][len(RESULT_TAG) :])


def _max_abs_diff(a: Any, b: Any) -> float:
    """Largest |a - b| over nested lists of numbers; NaN on both sides counts as equal."""
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return math.inf
        return max((_max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b)


def compare(row: str, res: dict, ref: dict) -> float:
    mine, theirs = res["result"], ref["result"]
    if row.startswith("rsmetrics-dota"):
        return _max_abs_diff(mine["ap"], theirs["ap"])
    keys = ("ap", "ap50", "ap75", "per_class")
    return max(_max_abs_diff(mine[k], theirs[k]) for k in keys)


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def machine_info() -> dict[str, str]:
    from importlib import metadata

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "shapely": version("shapely"),
        "rsmetrics": version("rsmetrics"),
        "dotadevkit": version("dotadevkit"),
        "pycocotools": version("pycocotools"),
        "faster-coco-eval": version("faster-coco-eval"),
        "commit": commit,
        "loadavg": _loadavg(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _fmt_s(s: float) -> str:
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def _fmt_x(x: float) -> str:
    return f"{x:.1f}×" if x < 10 else f"{x:.0f}×"


def _phases(ph: dict[str, float]) -> str:
    return ", ".join(f"{k} {_fmt_s(v)}" for k, v in ph.items())


def build_report(
    meta: dict, results: dict[str, dict], info: dict[str, str], args: argparse.Namespace
) -> tuple[str, list[str]]:
    """The markdown section and the list of failed identity checks."""
    failures: list[str] = []
    rows_md = []
    speed: dict[str, float] = {}
    diffs: dict[str, float] = {}
    for row, (tool, task, source) in ROWS.items():
        res = results.get(row)
        if res is None:
            continue
        if "error" in res:
            what = res["error"] if res.get("skipped") else f"failed: {res['error']}"
            rows_md.append(f"| {tool} | {task} | {source} | {what} | | | |")
            continue
        ref_row = REFERENCE.get(row)
        ref = results.get(ref_row) if ref_row else None
        if ref is None or "error" in ref:
            speedup, same = ("reference" if ref_row is None else "n/a"), ("reference" if ref_row is None else "n/a")
        else:
            x = ref["best_s"] / res["best_s"]
            speed[row] = x
            speedup = f"**{_fmt_x(x)}** vs {ROWS[ref_row][0].split(' ')[0]}"
            d = compare(row, res, ref)
            diffs[row] = d
            ok = d < 1e-9
            same = f"{'yes' if ok else '**NO**'} (max abs ΔAP {d:.1e})"
            if row.startswith("rsmetrics-dota") and not ok:
                failures.append(f"{row}: per-class AP differs from the devkit by {d:.3g}")
        n = f" (best of {res['repeat']})" if res["repeat"] > 1 else " (1 run)"
        rows_md.append(
            f"| {tool} | {task} | {source} | {_fmt_s(res['best_s'])}{n} | {res['peak_mb']:.0f} "
            f"(+{res['delta_mb']:.0f}) | {speedup} | {same} |"
        )

    def get(row: str, key: str) -> float | None:
        r = results.get(row)
        return None if r is None or "error" in r else r[key]

    # targets
    checks = []
    x = speed.get("rsmetrics-dota@0.50:0.95")
    d = diffs.get("rsmetrics-dota@0.50:0.95")
    if x is not None and d is not None:
        met = x >= 20 and d < 1e-9
        xf, df = speed.get("rsmetrics-dota-files@0.50:0.95"), diffs.get("rsmetrics-dota-files@0.50:0.95")
        extra = ""
        if xf is not None and df is not None:
            extra = f"; {'✅' if xf >= 20 and df < 1e-9 else '❌'} **{_fmt_x(xf)}** reading the same files with `rsmetrics.io`"
        checks.append(
            f"- ≥ 20× faster than dotadevkit at IoU 0.50:0.95 with identical per-class AP: {'✅' if met else '❌'} "
            f"**{_fmt_x(x)}** from memory{extra}; max abs ΔAP {max(d, df or 0.0):.1e}."
        )
    fce, rs_c = get("faster-coco-eval", "best_s"), get("rsmetrics-coco", "best_s")
    if fce and rs_c:
        fcef, rs_cf = get("faster-coco-eval-files", "best_s"), get("rsmetrics-coco-files", "best_s")
        extra = (
            f"; from the JSON files {_fmt_s(rs_cf)} s vs {_fmt_s(fcef)} s ({_fmt_x(fcef / rs_cf)})"
            if fcef and rs_cf
            else ""
        )
        if fcef and rs_cf:
            extra = f"; {'✅' if rs_cf < fcef else '❌'} from the JSON files {_fmt_s(rs_cf)} s vs {_fmt_s(fcef)} s ({_fmt_x(fcef / rs_cf)})"
        checks.append(
            f"- faster than faster-coco-eval on COCO bbox AP (hbb): {'✅' if rs_c < fce else '❌'} from memory "
            f"{_fmt_s(rs_c)} s vs {_fmt_s(fce)} s (**{_fmt_x(fce / rs_c)}**){extra}."
        )
    dk, rsf, rsm = (
        get(r, "peak_mb") for r in ("devkit@0.50:0.95", "rsmetrics-dota-files@0.50:0.95", "rsmetrics-dota@0.50:0.95")
    )
    if dk and (rsf or rsm):
        ours = rsf or rsm
        parts = []
        if rsf:
            parts.append(f"{rsf:.0f} MB reading the same files")
        if rsm:
            parts.append(f"{rsm:.0f} MB from memory")
        checks.append(
            f"- {'✅' if ours < dk else '❌'} lower peak memory than the devkit (IoU 0.50:0.95): "
            f"dotadevkit {dk:.0f} MB, rsmetrics {', '.join(parts)}."
        )
    pc, rcm = get("pycocotools", "peak_mb"), get("rsmetrics-coco", "peak_mb")
    if pc and rcm:
        pcf, rcf = get("pycocotools-files", "peak_mb"), get("rsmetrics-coco-files", "peak_mb")
        extra = f"; from the JSON files {rcf:.0f} MB vs {pcf:.0f} MB" if pcf and rcf else ""
        checks.append(f"- peak memory, COCO: rsmetrics {rcm:.0f} MB vs pycocotools {pc:.0f} MB from memory{extra}.")

    details = []
    for row in ROWS:
        r = results.get(row)
        if r is None or "error" in r:
            continue
        runs = ", ".join(_fmt_s(t) for t in r["times"])
        built = f"{r['construct_s']:.2f}" if r.get("construct_s") is not None else ""
        details.append(f"| `{row}` | {runs} | {_phases(r['phases'])} | {r['baseline_mb']:.0f} | {built} |")

    maps = []
    for row in ("devkit@0.5", "devkit@0.50:0.95"):
        r = results.get(row)
        if r and "error" not in r:
            ap = r["result"]["ap"]
            maps.append(f"{row.split('@')[1]}: mAP {sum(sum(a) / len(a) for a in ap) / len(ap):.6f}")
    r = results.get("pycocotools")
    if r and "error" not in r:
        res = r["result"]
        maps.append(f"COCO bbox: AP50:95 {res['ap']:.6f}, AP50 {res['ap50']:.6f}, AP75 {res['ap75']:.6f}")

    built = [r["construct_s"] for r in results.values() if r.get("construct_s") is not None]
    construct = f"{min(built):.2f}" if built else "n/a"
    cmd = "python benchmarks/bench_detection.py" + (f" --images {args.images}" if args.images != 5500 else "")
    cmd += f" --seed {args.seed}" if args.seed != 0 else ""
    lines = [
        MARK_START,
        "## Detection AP: rsmetrics vs dotadevkit, pycocotools, faster-coco-eval",
        "",
        f"Measured {info['date']} by `{cmd}` (commit {info['commit'] or 'unknown'}).",
        "",
        f"**Workload** (`rsmetrics.synthetic.make_detection_workload({args.images}, seed={args.seed})`): "
        f"{args.images:,} patches of 512 px, {meta['gt_objects']:,} GT quads ({meta['difficult_gt']:,} difficult or "
        f"truncated), {meta['predictions']:,} predictions, 15 DOTA-like classes; "
        f"{meta['input_mb']:.0f} MB of devkit label/Task1 files and COCO JSON, written once beforehand (not timed).",
        "",
        "**Machine**: " + f"{info['cpu']}, {info['cores']} cores, {info['memory']} RAM, {info['os']}, no GPU; "
        f"Python {info['python']}, numpy {info['numpy']}, shapely {info['shapely']}, rsmetrics {info['rsmetrics']}, "
        f"dotadevkit {info['dotadevkit']}, pycocotools {info['pycocotools']}, faster-coco-eval {info['faster-coco-eval']}. "
        f"Load average before / after the run: {info.get('loadavg_start', 'n/a')} / {info['loadavg']} "
        "(rows run one at a time; load from other work on the machine shows here).",
        "",
        "| tool | task | input | wall s | peak MB (+eval) | speedup vs reference | identical? |",
        "|---|---|---|---|---|---|---|",
        *rows_md,
        "",
        "Targets:",
        "",
        *checks,
        "",
        "How to read it:",
        "",
        "- *wall s*: best of N runs (`time.perf_counter`) in one fresh process per row, after an untimed warm "
        "preparation (imports; for *memory* rows the inputs are unpickled / the JSON text is parsed into fresh "
        "dicts before every run).",
        "- *input*: `files` rows read the devkit's label + Task1 files or the COCO JSON files inside the timed region "
        "(`dotadevkit` always does; its `voc_eval` re-reads every label file on each call); `memory` rows start "
        "from `ImageAnnotations`/`ImageDetections` (rsmetrics) or COCO dicts (`COCO()` + `createIndex` + `loadRes`). "
        f"Building those rsmetrics objects from arrays (validation, canonical quads) is not in the timed region: "
        f"{construct} s here (details below); the `files` rows include it.",
        "- *dotadevkit at 0.50:0.95*: `voc_eval` over 10 thresholds × 15 classes (150 calls), VOC07 11-point AP, "
        "as users run it; it has no multi-threshold mode. rsmetrics computes every IoU once for all thresholds.",
        "- *COCO rows*: load + `evaluate` + `accumulate` + `summarize` (all area ranges and maxDets, as `COCOeval` "
        "does by default) vs `evaluate_detection(..., 'coco')`; boxes are the horizontal boxes of the quads, "
        "difficult/truncated GT are `iscrowd` regions.",
        "- *peak MB*: the process's peak resident set (`VmHWM`, reset via `/proc/self/clear_refs` just before "
        "each timed run, so it is the peak during evaluation) — interpreter, imports and any in-memory input "
        "included; *(+eval)* is that peak minus the resident set right before the run.",
        "- *identical?*: max abs difference of per-class AP (every class × threshold) against the reference row; "
        "for COCO also AP50:95, AP50, AP75 and per-class AP50:95.",
        "",
        "Reference numbers (for anchoring): " + "; ".join(maps) + ".",
        "",
        "<details><summary>Per-run times, phases and memory baseline</summary>",
        "",
        "| row | runs (s) | phases of the best run (s) | RSS before run (MB) | building the input objects, untimed (s) |",
        "|---|---|---|---|---|",
        *details,
        "",
        "</details>",
        MARK_END,
    ]
    if not results.get("devkit@0.5", {}).get("peak_reset", True):
        lines.insert(-1, "\nNote: `/proc/self/clear_refs` was not writable; peaks include the preparation.")
    return "\n".join(lines), failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--images", type=int, default=None, help="number of 512 px patches (default 5500; 300 with --quick)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="300 patches, one run per row, BENCHMARKS.md left alone")
    ap.add_argument(
        "--repeat", type=int, default=None, help="runs per row, best is reported (default 3; 1 with --quick)"
    )
    ap.add_argument("--repeat-slow", type=int, default=1, help="runs of the devkit at 0.50:0.95 (default 1)")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching rows")
    ap.add_argument("--workdir", type=Path, default=None, help="where the inputs go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--write", dest="write", action="store_true", default=None, help="update BENCHMARKS.md")
    ap.add_argument("--no-write", dest="write", action="store_false", help="do not update BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument(
        "--profile", metavar="ROW", default=None, help="cProfile one run of ROW (needs --workdir with inputs)"
    )
    ap.add_argument("--render", type=Path, default=None, help="rebuild the report from a --json file, no measuring")
    ap.add_argument("--single", metavar="ROW", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.single:  # child process: one row
        out = run_single(args.single, args.workdir, args.repeat or 1)
        print(RESULT_TAG + json.dumps(out), flush=True)
        return 0

    if args.render:
        saved = json.loads(args.render.read_text())
        args.images, args.seed = saved["meta"]["images"], saved["meta"]["seed"]
        section, failures = build_report(saved["meta"], saved["results"], saved["machine"], args)
        print(section)
        if args.write is not False:
            write_section(SECTION, section)
            print(f"\nupdated {BENCHMARKS_MD}")
        assert not failures, "; ".join(failures)
        return 0

    args.images = args.images if args.images is not None else (300 if args.quick else 5500)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    write = args.write if args.write is not None else not args.quick
    rows = [r for r in ROWS if not args.only or any(s in r for s in args.only.split(","))]

    loadavg_start = _loadavg()
    own_dir = args.workdir is None
    wd = Path(tempfile.mkdtemp(prefix="rsmetrics-bench-")) if own_dir else args.workdir
    try:
        meta = prepare_workdir(wd, args.images, args.seed)
        if args.profile:
            print(profile_single(args.profile, wd))
            return 0
        print(
            f"workload: {args.images} images, {meta['gt_objects']} GT, {meta['predictions']} predictions "
            f"(generated in {meta.get('generate_s', 0):.1f} s, files written in {meta.get('write_s', 0):.1f} s) in {wd}",
            flush=True,
        )
        results: dict[str, dict] = {}
        for row in rows:
            why = unavailable(row)
            if why:
                print(f"  {row:32s} skipped: {why}", flush=True)
                results[row] = {"row": row, "error": f"skipped: {why}", "skipped": True}
                continue
            n = args.repeat_slow if row in SLOW_ROWS else repeat
            t0 = time.perf_counter()
            res = run_child(row, wd, n)
            results[row] = res
            if "error" in res:
                print(f"  {row:32s} FAILED: {res['error']}", flush=True)
                print(res.get("stderr", "")[-3000:], file=sys.stderr)
            else:
                print(
                    f"  {row:32s} best {res['best_s']:8.3f} s of {n}  peak {res['peak_mb']:6.0f} MB "
                    f"(+{res['delta_mb']:.0f})  [{_phases(res['phases'])}]  ({time.perf_counter() - t0:.0f} s total)",
                    flush=True,
                )
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(wd, ignore_errors=True)
        elif args.keep or not own_dir:
            print(f"inputs kept in {wd}")

    info = machine_info()
    info["loadavg_start"] = loadavg_start
    section, failures = build_report(meta, results, info, args)
    print()
    print(section)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "machine": info, "results": results}, indent=1))
    if write:
        write_section(SECTION, section)
        print(f"\nupdated {BENCHMARKS_MD}")
    assert not failures, "; ".join(failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
