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

Every point is one run of the base config with the point's values as overrides. This module reads
the file and expands it into points; :mod:`~nst_lightning.sweep.naming` names them,
:mod:`~nst_lightning.sweep.planning` groups the ones that can share a batch, and :mod:`nst_lightning.sweep.run` runs them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nst_lightning.errors import NstLightningError

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


class SweepError(NstLightningError):
    """The sweep file or an inline ``--set`` is not usable."""


@dataclass
class Sweep:
    """An expanded sweep: the base config, the overrides every point shares, and the points."""

    config: Path
    output_dir: Path
    fixed: dict[str, Any]
    points: list[Point]
    build: Callable[[list[str]], Any] | None = None
    """Builds one run from ``fit`` arguments without running it (``nst_lightning.cli.fit.build_cli`` with
    ``run=False``): given by the command, so that the sweep runs points exactly as ``fit`` would."""
    describe: Callable[[BaseException], str] | None = None
    """The one-line message of a point's error, as ``fit`` would print it (the config key, the class and the
    plugin of a failing component): given by the command, like ``build``."""

    def error_message(self, exc: BaseException) -> str:
        if self.describe is not None:
            return self.describe(exc)
        return f"{type(exc).__name__}: {exc}"

    @property
    def varying(self) -> list[str]:
        return varying_keys(self.points)


@dataclass
class Point:
    """One sweep point: its overrides (dotted key -> value) and the file-safe name derived from them."""

    params: dict[str, Any]
    name: str = ""
    result: dict[str, Any] = field(default_factory=dict)


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


def _sampler(key: str, dist: Any):
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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_keys(points: list[Point]) -> list[str]:
    """The keys whose values differ between points, in sweep order."""
    keys = list(dict.fromkeys(k for p in points for k in p.params))
    return [k for k in keys if len({_canonical(p.params.get(k)) for p in points}) > 1]
