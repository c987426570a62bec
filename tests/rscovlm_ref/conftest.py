"""Shared fixtures of the trainer tests: the real Qwen2.5 tokenizer, a tiny Qwen2.5-VL, rendered samples.

Everything is built offline once per session (the tokenizer conversion is
cached on disk, see :func:`rscovlm_ref.testing.cache_dir`). One thread per
test process: oversubscribed OpenMP threads make torch ~100x slower.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(1)

from rscovlm_ref import testing  # noqa: E402
from rsformat.render import RenderStyle  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from rscovlm_fixtures import FRAME, Rendered, detection_record, make_image, rendered, zoom_record  # noqa: E402


@pytest.fixture(scope="session")
def processor() -> Any:
    # the same pixel budget as the render frame, so the stock processor keeps the images' sizes too
    return testing.tiny_qwen25vl_processor(min_pixels=FRAME.min_pixels, max_pixels=FRAME.max_pixels)


@pytest.fixture(scope="session")
def tiny_config(processor: Any) -> Any:
    return testing.tiny_qwen25vl_config(processor.tokenizer)


@pytest.fixture(scope="session")
def models(tiny_config: Any) -> dict[str, Any]:
    """The same random weights under eager and sdpa attention."""
    return {
        impl: testing.tiny_qwen25vl(seed=0, attn_implementation=impl, config=tiny_config) for impl in ("eager", "sdpa")
    }


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    make_image(root / "zoom.png", 640, 480, 0)
    make_image(root / "det.png", 300, 200, 1)
    return root


@pytest.fixture(scope="session")
def zoom_chain(image_root: Path) -> Rendered:
    return rendered(zoom_record(), image_root, RenderStyle("plain", "hbb", tool_format="qwen"))


@pytest.fixture(scope="session")
def zoom_chain_openai(image_root: Path) -> Rendered:
    return rendered(zoom_record(), image_root, RenderStyle("plain", "hbb", tool_format="openai"))


@pytest.fixture(scope="session")
def detection(image_root: Path) -> Rendered:
    return rendered(detection_record(), image_root, RenderStyle("json", "quad"))


@pytest.fixture(scope="session")
def detection_plain(image_root: Path) -> Rendered:
    return rendered(detection_record(), image_root, RenderStyle("plain", "hbb"))


@pytest.fixture(scope="session")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CPU example's converted synthetic datasets (rsformat), written once per session."""
    from rscovlm_ref.example import prepare_example

    out = tmp_path_factory.mktemp("example")
    prepare_example(out, quiet=True)
    return out
