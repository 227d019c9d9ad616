"""Parameter sweeps: expand a grid and random samples over dotted config keys into points, and keep a manifest.

A sweep file (YAML) names dotted keys, the same keys as the command line's overrides::

    grid:                                   # every combination of these values
      model.losses.style.init_args.weight: [10, 100]
      data.style: [starry_night.jpg, the_scream.jpg]
    random:                                 # drawn ``samples`` times for every grid point
      model.optimizer.init_args.lr: {loguniform: [0.01, 0.1]}
    samples: 2
    seed: 0                                 # seeds the draws: a rerun draws the same points
    fixed: {trainer.max_steps: 100}         # applied to every point
    output_dir: outputs/sweeps/my_sweep

Every point is one run of the base config with the point's values as overrides. This module turns
the file into points, names them, groups the ones that can share a batch, and reads and writes the
manifest; :mod:`nst_lightning.sweep_run` runs them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .atomic import atomic_write

DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
SPEC_KEYS = {"grid", "random", "samples", "seed", "fixed", "output_dir"}
SEED_KEY = "seed_everything"
# Every point runs quietly without checkpoints; the sweep prints its own progress. A sweep's `fixed` overrides these.
POINT_DEFAULTS = {
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
    "trainer.enable_checkpointing": False,
    "trainer.logger": False,
}
MANIFEST = "manifest.json"
NAME_LIMIT = 100


class SweepError(Exception):
    """The sweep file or an inline ``--set`` is not usable."""


@dataclass
class Sweep:
    """An expanded sweep: the base config, the overrides every point shares, and the points."""

    config: Path
    output_dir: Path
    fixed: dict[str, Any]
    points: list[Point]

    @property
    def varying(self) -> list[str]:
        return varying_keys(self.points)


@dataclass
class Point:
    """One sweep point: its overrides (dotted key -> value) and the file-safe name derived from them."""

    params: dict[str, Any]
    name: str = ""
    result: dict[str, Any] = field(default_factory=dict)



# -- reading the sweep ----------------------------------------------------------------------------


def parse_set(items: list[str]) -> dict[str, list[Any]]:
    """``--set key=v1,v2`` items as grid axes. Values are YAML (``1e-2``, ``true``, ``[a, b]``)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise SweepError(f"--set {item!r}: expected key=value[,value...]")
        grid[key.strip()] = [_yaml_value(v, item) for v in _split_commas(values)]
    return grid


def _split_commas(text: str) -> list[str]:
    """Split on commas outside brackets and braces, so ``[a,b],[c]`` gives two values."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-2`` as a string; read it (in lists and mappings too) as the number it means."""
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    if isinstance(value, list):
        return [numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    return value


def _yaml_value(text: str, where: str) -> Any:
    try:
        return numbers(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise SweepError(f"{where}: {text!r} is not a YAML value ({exc.problem})") from None


def load_spec(path: str | os.PathLike | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"sweep file {str(p)!r} does not exist")
    try:
        spec = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"sweep file {str(p)!r} is not valid YAML ({exc})") from None
    if not isinstance(spec, dict):
        raise SweepError(f"sweep file {str(p)!r} must be a mapping with grid, random, samples, seed, fixed")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise SweepError(f"sweep file {str(p)!r}: unknown keys {unknown}; known: {sorted(SPEC_KEYS)}")
    return spec


def _mapping(spec: dict[str, Any], key: str) -> dict[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise SweepError(f"sweep: {key} must map dotted config keys to values")
    return numbers(value)


def _sampler(key: str, dist: Any):  # noqa: ANN202
    """A function of a ``random.Random`` that draws ``key``'s value from ``{name: args}``."""
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise SweepError(f"sweep: random.{key} must be one of {{{', '.join(DISTRIBUTIONS)}: [...]}}, not {dist!r}")
    name, args = next(iter(dist.items()))
    if name == "choice":
        if not isinstance(args, list) or not args:
            raise SweepError(f"sweep: random.{key}: choice needs a non-empty list")
        return lambda rng: rng.choice(args)
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args)):
        raise SweepError(f"sweep: random.{key}: {name} needs [low, high]")
    low, high = args
    if not low < high or (name == "loguniform" and low <= 0):
        raise SweepError(f"sweep: random.{key}: {name} needs 0 < low < high" if name == "loguniform"
                         else f"sweep: random.{key}: {name} needs low < high")
    if name == "uniform":
        return lambda rng: rng.uniform(low, high)
    if name == "loguniform":
        return lambda rng: math.exp(rng.uniform(math.log(low), math.log(high)))
    return lambda rng: rng.randrange(int(low), int(high))


def expand(spec: dict[str, Any], inline: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """Every grid combination, ``samples`` times, each with its own random draws (Ray Tune's semantics)."""
    grid = {**_mapping(spec, "grid"), **(inline or {})}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"sweep: grid {key} must be a non-empty list of values, not {values!r}")
    samplers = {k: _sampler(k, d) for k, d in _mapping(spec, "random").items()}
    samples = spec.get("samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(f"sweep: samples must be a positive integer, not {samples!r}")
    rng = random.Random(spec.get("seed", 0))
    points = []
    for _ in range(samples):
        for combo in itertools.product(*grid.values()):
            params = dict(zip(grid, combo))
            params.update({k: draw(rng) for k, draw in samplers.items()})
            points.append(params)
    return points


def build_sweep(
    config: str | os.PathLike,
    spec_path: str | os.PathLike | None,
    inline: list[str] | None = None,
    output_dir: str | os.PathLike | None = None,
) -> Sweep:
    """The expanded sweep of ``spec_path`` (and inline ``--set`` axes) over the base ``config``."""
    config = Path(config)
    if not config.is_file():
        raise SweepError(f"--config {str(config)!r} does not exist")
    spec = load_spec(spec_path)
    params = expand(spec, parse_set(inline or []))
    default_dir = Path("outputs") / "sweeps" / (Path(spec_path).stem if spec_path else "sweep")
    out = Path(output_dir or spec.get("output_dir") or default_dir)
    fixed = {**POINT_DEFAULTS, **_mapping(spec, "fixed")}
    points = [Point(p) for p in params]
    name_points(points)
    return Sweep(config.resolve(), out.resolve(), fixed, points)


# -- names ----------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_keys(points: list[Point]) -> list[str]:
    """The keys whose values differ between points, in sweep order."""
    keys = list(dict.fromkeys(k for p in points for k in p.params))
    return [k for k in keys if len({_canonical(p.params.get(k)) for p in points}) > 1]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")
_LABEL_NOISE = {"model", "data", "init_args", "losses", "class_path"}


def short_key(key: str) -> str:
    """``model.losses.style.init_args.weight`` -> ``style.weight``; ``data.style`` -> ``style``."""
    parts = [p for p in key.split(".") if p not in _LABEL_NOISE]
    return ".".join(parts) or key


def short_labels(keys: list[str]) -> dict[str, str]:
    """Short labels for ``keys``, falling back to the full key where two short ones would collide."""
    shorts = {k: short_key(k) for k in keys}
    clashes = {s for s in shorts.values() if list(shorts.values()).count(s) > 1}
    return {k: (k if s in clashes else s) for k, s in shorts.items()}


def format_value(value: Any) -> str:
    """A short text for a value: a file's stem, a float in ``%g``, a list joined with ``+``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and ("/" in value or Path(value).suffix):
        return Path(value).stem
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return format_value(value.get("class_path", json.dumps(value, sort_keys=True)))
    return str(value)


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha1(_canonical(params).encode()).hexdigest()[:8]


def name_points(points: list[Point]) -> None:
    """Name each point by the parameters that vary: ``style.weight=10_style=the_scream``, file-safe, unique.

    Only ``[A-Za-z0-9._=+-]`` survives and a name never starts with a dot, so a name cannot leave
    the output directory; a long or repeated name gets a hash of the parameters.
    """
    keys = varying_keys(points)
    labels = short_labels(keys)
    names = []
    for p in points:
        text = "_".join(f"{labels[k]}={format_value(p.params.get(k))}" for k in keys) or "base"
        name = _UNSAFE.sub("-", text).lstrip(".-") or "point"
        if len(name) > NAME_LIMIT:
            name = f"{name[:NAME_LIMIT]}-{_digest(p.params)}"
        names.append(name)
    for p, name in zip(points, names):
        p.name = name if names.count(name) == 1 else f"{name}-{_digest(p.params)}"
    if len({p.name for p in points}) < len(points):
        raise SweepError("sweep: two points have the same parameters")


def output_path(sweep: Sweep, point: Point) -> Path:
    path = (sweep.output_dir / f"{point.name}.png").resolve()
    if path.parent != sweep.output_dir:  # name_points makes this impossible; keep the promise checked
        raise SweepError(f"point name {point.name!r} leaves the output directory")
    return path


# -- config arguments and batches -----------------------------------------------------------------


def to_argument(value: Any) -> str:
    """A value as one command-line argument for jsonargparse: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def point_arguments(sweep: Sweep, point: Point, output: Path) -> list[str]:
    """The ``fit`` arguments of a point (without ``fit``): the base config, then its overrides."""
    args = ["--config", str(sweep.config)]
    for key, value in {**sweep.fixed, **point.params}.items():
        args += [f"--{key}", to_argument(value)]
    return [*args, "--output", str(output), "--overwrite", "true"]


def merged_config(sweep: Sweep, point: Point) -> dict[str, Any]:
    """The base config's YAML with the point's overrides set by their dotted keys (no class resolution)."""
    config = yaml.safe_load(sweep.config.read_text()) or {}
    for key, value in {**sweep.fixed, **point.params}.items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {"class_path": node[part]} if isinstance(node.get(part), str) else {}
            node = node[part]
        node[leaf] = value
    return config


@functools.cache
def _is_lbfgs(name: str | None) -> bool:
    """Whether the optimizer class named ``name`` (short or full path; None: the default) is L-BFGS."""
    import torch

    from .plugins import load_plugins

    if not name:
        return True
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return True  # unknown: run it alone, where fit reports the error
    else:
        cls = load_plugins().registry.classes["optimizer"].get(name)
    return not isinstance(cls, type) or issubclass(cls, torch.optim.LBFGS)


def _loss_args(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``init_args`` of each loss term in a merged config, by loss name."""
    losses = (config.get("model") or {}).get("losses") or {}
    return {name: term["init_args"] for name, term in losses.items()
            if isinstance(term, dict) and isinstance(term.get("init_args"), dict)}


def loss_weights(sweep: Sweep, point: Point) -> dict[str, float]:
    """The loss weights the point's config sets, by loss name (the others keep their class defaults)."""
    return {name: float(args["weight"]) for name, args in _loss_args(merged_config(sweep, point)).items()
            if "weight" in args}


def _uses_lbfgs(config: dict[str, Any]) -> bool:
    optimizer = (config.get("model") or {}).get("optimizer")
    return _is_lbfgs(optimizer.get("class_path") if isinstance(optimizer, dict) else optimizer)


def batch_key(sweep: Sweep, point: Point) -> str | None:
    """Points with equal keys can share one batched run; None: this point runs alone.

    They must agree on everything but the loss weights and, unless the image starts from noise,
    the seed. L-BFGS points run alone: its line search and history span everything it optimizes.
    """
    config = merged_config(sweep, point)
    if _uses_lbfgs(config):
        return None
    for args in _loss_args(config).values():
        args.pop("weight", None)
    if (config.get("model") or {}).get("init", "content") != "noise":
        config.pop(SEED_KEY, None)
    config.pop("output", None)
    return json.dumps(config, sort_keys=True, default=str)


def plan_batches(sweep: Sweep, points: list[Point], max_batch: int) -> list[list[Point]]:
    """Split ``points`` into batches of at most ``max_batch`` that can run as one batched tensor."""
    if max_batch <= 1:
        return [[p] for p in points]
    groups: dict[str, list[Point]] = {}
    alone = []
    for p in points:
        key = batch_key(sweep, p)
        if key is None:
            alone.append([p])
        else:
            groups.setdefault(key, []).append(p)
    chunks = [g[i : i + max_batch] for g in groups.values() for i in range(0, len(g), max_batch)]
    return chunks + alone


# -- manifest -------------------------------------------------------------------------------------


def read_manifest(output_dir: Path, fixed: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The previous run's point records by name; {} when there is none, it is unreadable, or it ran
    with other shared overrides (``fixed``)."""
    try:
        data = json.loads((output_dir / MANIFEST).read_text())
        if fixed is not None and _canonical(data["fixed"]) != _canonical(fixed):
            return {}
        return {r["name"]: r for r in data["points"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def is_finished(record: dict[str, Any] | None, point: Point) -> bool:
    """Whether a previous run finished ``point``: done, with the same parameters, and its image still there."""
    return (
        bool(record)
        and record.get("status") == "done"
        and _canonical(record.get("params")) == _canonical(point.params)
        and Path(record.get("output", "")).is_file()
    )


def write_manifest(sweep: Sweep, records: dict[str, dict[str, Any]]) -> Path:
    """Write the manifest atomically: one record per point, in sweep order."""
    sweep.output_dir.mkdir(parents=True, exist_ok=True)
    path = sweep.output_dir / MANIFEST
    data = {
        "config": str(sweep.config),
        "fixed": sweep.fixed,
        "varying": sweep.varying,
        "points": [records[p.name] for p in sweep.points if p.name in records],
    }
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
    return path
