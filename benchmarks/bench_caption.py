"""Captioning metrics: rsmetrics.caption against pycocoevalcap (the coco-caption toolkit), same run.

``--images`` synthetic remote-sensing captions (a prediction and 1-5 references
per image, 1-30 words from a captioning vocabulary) are scored by both on the
same whitespace tokens: BLEU-1..4, CIDEr-D and ROUGE-L, which must agree to
1e-12. Tokenisation is timed apart: our Python PTB tokenizer against the
toolkit's Java PTB tokenizer (when Java is installed). The wall times and ratios
are written to BENCHMARKS.md between the ``bench_caption`` markers.

Run: ``.venv/bin/python benchmarks/bench_caption.py`` (``--quick``: prints only).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time

import numpy as np
from _common import cpu_name, markers, write_section  # benchmarks/ is on sys.path when a script runs

from rsmetrics.caption import caption_scores, tokenize_caption

WORDS = (
    "a an the white red gray large small long ship ships boat plane planes harbor airport runway parked docked "
    "moored near next to beside of in on at along two three four several many storage tank tanks bridge river road "
    "roads car cars vehicle vehicles building buildings residential area green field fields tree trees is are "
    "with and there some left right top bottom corner center middle image scene"
).split()


def corpus(images: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)

    def sentence() -> str:
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 31))))
        # real captions do not end in a one-letter word: PTB's reading of "... a." depends on the next line
        words[-1] = words[-1] if len(words[-1]) > 1 else "image"
        return " ".join(words).capitalize() + "."

    refs = [[sentence() for _ in range(int(rng.integers(1, 6)))] for _ in range(images)]
    preds = []
    for group in refs:  # half the predictions copy most of a reference, so that long n-grams match
        words = group[0].split()
        preds.append(
            " ".join(words[: max(1, len(words) - int(rng.integers(0, 4)))]) if rng.random() < 0.5 else sentence()
        )
    return preds, refs


def run(images: int) -> dict[str, object]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    preds, refs = corpus(images)
    t0 = time.perf_counter()
    tok_preds = [" ".join(tokenize_caption(p)) for p in preds]
    tok_refs = [[" ".join(tokenize_caption(r)) for r in group] for group in refs]
    ours_tok_s = time.perf_counter() - t0

    java_tok_s = None
    if shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        t0 = time.perf_counter()
        theirs_tok = PTBTokenizer().tokenize({i: [{"caption": r} for r in g] for i, g in enumerate(refs)})
        java_tok_s = time.perf_counter() - t0
        same_tokens = all(theirs_tok[i] == tok_refs[i] for i in range(images))
    else:
        same_tokens = None

    t0 = time.perf_counter()
    ours = caption_scores(tok_preds, tok_refs, tokenize=False)
    ours_s = time.perf_counter() - t0

    gts = {i: g for i, g in enumerate(tok_refs)}
    res = {i: [p] for i, p in enumerate(tok_preds)}
    t0 = time.perf_counter()
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    theirs_s = time.perf_counter() - t0

    diff = max(max(abs(a - b) for a, b in zip(ours.bleu, bleu)), abs(ours.cider_d - cider), abs(ours.rouge_l - rouge))
    return {
        "images": images, "refs": sum(len(g) for g in refs), "ours_s": ours_s, "theirs_s": theirs_s, "diff": diff,
        "ours_tok_s": ours_tok_s, "java_tok_s": java_tok_s, "same_tokens": same_tokens,
        "bleu4": ours.bleu[3], "cider": ours.cider_d, "rouge": ours.rouge_l,
    }  # fmt: skip


def section(r: dict) -> str:
    start, end = markers("bench_caption")
    tok = (
        f"| tokenisation (PTB, lower-cased, punctuation dropped) | {r['java_tok_s']:.2f} (Java, pycocoevalcap) | "
        f"{r['ours_tok_s']:.2f} | {r['java_tok_s'] / r['ours_tok_s']:.1f}x |"
        if r["java_tok_s"]
        else "| tokenisation | (no Java here) | " + f"{r['ours_tok_s']:.2f} | |"
    )
    return "\n".join(
        [
            start,
            "## Captioning metrics (`benchmarks/bench_caption.py`)",
            "",
            f"Machine: {cpu_name()}; Python {platform.python_version()}. {r['images']:,} synthetic captions with "
            f"{r['refs']:,} references; the same whitespace tokens given to both.",
            "",
            "| step | pycocoevalcap s | rsmetrics s | speed-up |",
            "|---|---|---|---|",
            f"| BLEU-1..4 + CIDEr-D + ROUGE-L | {r['theirs_s']:.2f} | {r['ours_s']:.2f} | "
            f"{r['theirs_s'] / r['ours_s']:.1f}x |",
            tok,
            "",
            f"Largest difference of the scores: {r['diff']:.1e} (BLEU-4 {r['bleu4']:.4f}, CIDEr-D {r['cider']:.4f}, "
            f"ROUGE-L {r['rouge']:.4f}). Tokens equal to the Java tokenizer's on every reference: "
            f"**{r['same_tokens']}**.",
            end,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, BENCHMARKS.md left alone")
    ap.add_argument("--images", type=int, default=5000)
    args = ap.parse_args(argv)
    r = run(300 if args.quick else args.images)
    text = section(r)
    print(text)
    if r["diff"] > 1e-12:
        print("error: the scores differ from pycocoevalcap's", file=sys.stderr)
        return 1
    if not args.quick:
        write_section("bench_caption", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
