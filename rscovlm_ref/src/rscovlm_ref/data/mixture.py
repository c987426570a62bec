"""The mixture config: which datasets, how much of each, and how each is rendered.

A YAML file, validated into small dataclasses with errors that name the file,
the dataset and the field::

    seed: 42
    mode: weighted            # or "recipe" (RSCoVLM's repeat / subsample semantics)
    num_samples: 100000       # draws per epoch in weighted mode (default: sum of sizes)
    datasets:
      - name: dota_512
        path: data/dota       # an rsformat dataset folder, or hf://<repo_id>
        config: dota_ss512
        split: train
        weight: 25            # weighted mode
        repeat: 25            # recipe mode: RSCoVLM "*25"
        keep: 1.0             # recipe mode: RSCoVLM "%p" as a fraction
        render:
          styles: {plain-quad: 0.8, json-quad: 0.2}
          random_resize: 1.0  # probability of a random input size
          prompts: []         # optional prompt pool (one chosen at random)
          synonym_rate: 0.0   # probability of replacing a class name by a synonym
          synonyms: dota      # the synonym table: a built-in name or {class: [synonyms]}
          categories: [...]   # the class list of the detection prompt (default: the dataset's)

Example:
    >>> cfg = MixtureConfig.from_dict({"datasets": [{"name": "a", "path": "d", "weight": 2}]})
    >>> cfg.datasets[0].weight, cfg.datasets[0].render.styles
    (2.0, {'plain-hbb': 1.0})
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "DatasetSpec", "MixtureConfig", "RenderSpec", "load_mixture"]


class ConfigError(ValueError):
    """A mixture config is invalid; the message names the file, dataset and field."""


_STYLES = {f"{o}-{b}" for o in ("plain", "json") for b in ("hbb", "quad", "obb")}


def _number(value: Any, where: str, name: str, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: `{name}` must be a number, but got {value!r}") from None
    ok = (x > low if low_open else x >= low) and x <= high and math.isfinite(x)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ConfigError(f"{where}: `{name}` must be {bound}, but got {value!r}")
    return x


def _unknown(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {extra}; expected some of {sorted(allowed)}")


def _synonyms(value: Any, rate: Any, where: str) -> str | dict[str, tuple[str, ...]] | None:
    from rscovlm_ref.data.synonyms import resolve_table

    if value is None:
        if rate:
            raise ConfigError(
                f"{where}: `synonym_rate` needs a `synonyms` table (a built-in name like 'dota' or a mapping)"
            )
        return None
    try:
        table = resolve_table(value)
    except (ValueError, AttributeError, TypeError) as err:
        raise ConfigError(f"{where}: `synonyms`: {err}") from None
    return value if isinstance(value, str) else table


def _categories(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(c, str) and c for c in value):
        raise ConfigError(f"{where}: `categories` must be a list of class names")
    return tuple(value)


@dataclass(frozen=True)
class RenderSpec:
    """How one dataset's records are rendered into training samples."""

    styles: dict[str, float] = field(default_factory=lambda: {"plain-hbb": 1.0})
    random_resize: float = 0.0
    prompts: tuple[str, ...] = ()
    synonym_rate: float = 0.0
    synonyms: str | dict[str, tuple[str, ...]] | None = None
    categories: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str) -> RenderSpec:
        d = dict(d or {})
        _unknown(d, {"styles", "random_resize", "prompts", "synonym_rate", "synonyms", "categories"}, where)
        styles = d.get("styles", {"plain-hbb": 1.0})
        if isinstance(styles, str):
            styles = {styles: 1.0}
        if not isinstance(styles, Mapping) or not styles:
            raise ConfigError(f"{where}: `styles` must map style names to probabilities, but got {styles!r}")
        bad = sorted(set(styles) - _STYLES)
        if bad:
            raise ConfigError(f"{where}: unknown style(s) {bad}; expected some of {sorted(_STYLES)}")
        probs = {k: _number(v, where, f"styles.{k}", low=0) for k, v in styles.items()}
        if abs(sum(probs.values()) - 1.0) > 1e-6:
            raise ConfigError(f"{where}: style probabilities must sum to 1, but sum to {sum(probs.values()):g}")
        prompts = d.get("prompts") or ()
        if isinstance(prompts, str) or not all(isinstance(p, str) and p for p in prompts):
            raise ConfigError(f"{where}: `prompts` must be a list of non-empty strings")
        return cls(
            styles=probs,
            random_resize=_number(d.get("random_resize", 0.0), where, "random_resize", low=0, high=1),
            prompts=tuple(prompts),
            synonym_rate=_number(d.get("synonym_rate", 0.0), where, "synonym_rate", low=0, high=1),
            synonyms=_synonyms(d.get("synonyms"), d.get("synonym_rate", 0.0), where),
            categories=_categories(d.get("categories"), where),
        )


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the mixture."""

    name: str
    path: str
    config: str | None = None
    split: str = "train"
    weight: float = 1.0
    repeat: int = 1
    keep: float = 1.0
    render: RenderSpec = field(default_factory=RenderSpec)
    image_root: str | None = None  # folder of non-embedded image paths (default: the dataset folder)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> DatasetSpec:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: a dataset entry must be a mapping, but got {type(d).__name__}")
        _unknown(d, {"name", "path", "config", "split", "weight", "repeat", "keep", "render", "image_root"}, where)
        for key in ("name", "path"):
            if not isinstance(d.get(key), str) or not d.get(key):
                raise ConfigError(f"{where}: `{key}` is required and must be a non-empty string")
        where = f"{where} ({d['name']})"
        repeat = d.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise ConfigError(f"{where}: `repeat` must be an integer >= 1, but got {repeat!r}")
        return cls(
            name=d["name"],
            path=d["path"],
            config=d.get("config"),
            split=str(d.get("split", "train")),
            weight=_number(d.get("weight", 1.0), where, "weight", low=0, low_open=True),
            repeat=repeat,
            keep=_number(d.get("keep", 1.0), where, "keep", low=0, high=1, low_open=True),
            render=RenderSpec.from_dict(d.get("render"), f"{where} render"),
            image_root=None if d.get("image_root") is None else str(d["image_root"]),
        )

    def resolve_path(self, base: Path) -> str:
        """The dataset location: ``hf://`` ids unchanged, relative folders against ``base``."""
        if self.path.startswith("hf://"):
            return self.path
        p = Path(self.path)
        return str(p if p.is_absolute() else base / p)


@dataclass(frozen=True)
class MixtureConfig:
    """A validated mixture: datasets with their weights and render settings."""

    datasets: tuple[DatasetSpec, ...]
    seed: int = 42
    mode: str = "weighted"
    num_samples: int | None = None
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> MixtureConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: the config must be a mapping, but got {type(d).__name__}")
        _unknown(d, {"seed", "mode", "num_samples", "datasets"}, source)
        mode = d.get("mode", "weighted")
        if mode not in ("weighted", "recipe"):
            raise ConfigError(f"{source}: `mode` must be 'weighted' or 'recipe', but got {mode!r}")
        entries = d.get("datasets")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{source}: `datasets` must be a non-empty list")
        specs = tuple(DatasetSpec.from_dict(e, f"{source}: datasets[{i}]") for i, e in enumerate(entries))
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"{source}: dataset names must be unique, but {dup} repeat")
        num = d.get("num_samples")
        if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num < 1):
            raise ConfigError(f"{source}: `num_samples` must be an integer >= 1, but got {num!r}")
        seed = d.get("seed", 42)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{source}: `seed` must be an integer, but got {seed!r}")
        return cls(specs, seed, mode, num, source)


def read_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """The YAML document of a config file (safe loader: no arbitrary objects); errors name the file.

    Raises:
        ConfigError: a missing file (``no such <what>``) or invalid YAML.
    """
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such {what}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({err})") from None


def load_mixture(path: str | os.PathLike[str]) -> MixtureConfig:
    """Read and validate a mixture YAML file."""
    return MixtureConfig.from_dict(read_yaml(path, "mixture config") or {}, source=str(Path(path)))
