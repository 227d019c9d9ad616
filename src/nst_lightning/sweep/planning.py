"""From points to runs: each point's command-line arguments, and which points can share one batched run."""

from __future__ import annotations

import copy
import functools
import importlib
import json
from pathlib import Path
from typing import Any

import yaml

from nst_lightning.config_tree import class_path, get_key, loss_terms, set_key
from nst_lightning.image.io import shape_at
from nst_lightning.model.optimizers import optimizer_traits
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.sweep.spec import SEED_KEY, Point, Sweep


def to_argument(value: Any) -> str:
    """A value as one command-line argument for jsonargparse: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def point_arguments(sweep: Sweep, point: Point, output: Path) -> list[str]:
    """The ``fit`` arguments of a point (without ``fit``): the base config, then its overrides."""
    args = ["--config", str(sweep.config)]
    for key, value in {**sweep.fixed, **point.params}.items():
        args += [f"--{key}", to_argument(value)]
    return [*args, "--output", str(output), "--overwrite", "true"]


@functools.lru_cache(maxsize=8)
def _base_config(path: Path, stamp: tuple[int, int]) -> dict[str, Any]:
    """The base config's YAML, parsed once per version of the file (``stamp``: its mtime and size)."""
    return yaml.safe_load(path.read_text()) or {}


def merged_config(sweep: Sweep, point: Point) -> dict[str, Any]:
    """The base config's YAML with the point's overrides set by their dotted keys (no class resolution)."""
    stat = sweep.config.stat()
    config = copy.deepcopy(_base_config(sweep.config, (stat.st_mtime_ns, stat.st_size)))
    for key, value in {**sweep.fixed, **point.params}.items():
        set_key(config, key, value)
    return config


@functools.cache
def optimizer_class(name: str | None) -> type | None:
    """The optimizer class named ``name`` (short or full path; None: the default); None if it cannot be found."""
    if not name:
        return None
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None
    else:
        cls = load_plugins().registry.classes["optimizer"].get(name)
    return cls if isinstance(cls, type) else None


def keeps_images_independent(config: dict[str, Any]) -> bool:
    """Whether the config's optimizer declares that its step on a batch equals each image's own step
    (:func:`~nst_lightning.model.optimizers.optimizer_traits`, with the config's init args). A class that does
    not say, or cannot be found, couples the batch: its points run alone (where ``fit`` reports the error)."""
    component = get_key(config, "model.optimizer")
    name = class_path(component)
    cls = optimizer_class(name)
    if name and cls is None:
        return False
    init_args = component.get("init_args") if isinstance(component, dict) else None
    return optimizer_traits(cls, init_args if isinstance(init_args, dict) else {}).per_image


def _loss_args(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``init_args`` of each loss term in a merged config, by loss name."""
    return {name: term["init_args"] for name, term in loss_terms(config).items()
            if isinstance(term, dict) and isinstance(term.get("init_args"), dict)}


def loss_weights(sweep: Sweep, point: Point) -> dict[str, float]:
    """The loss weights the point's config sets, by loss name (the others keep their class defaults)."""
    return {name: float(args["weight"]) for name, args in _loss_args(merged_config(sweep, point)).items()
            if "weight" in args}




PER_IMAGE_INPUTS = ("style", "style_blend_weights", "masks")  # with data.content: each image of a batch its own


def batch_key(sweep: Sweep, point: Point, shapes: dict[tuple[str, int], tuple[int, int]] | None = None) -> str | None:
    """Points with equal keys can share one batched run; None: this point runs alone.

    They must agree on everything but the loss weights, their own inputs (``data.content``, ``data.style``,
    ``data.style_blend_weights``, ``data.masks``: each image of a batch has its own targets, so what must agree is
    the output's size in pixels) and, unless the image starts from noise, the seed. Points whose optimizer couples the images of a batch run alone (torch's L-BFGS and ImageLBFGS's
    strong-Wolfe path: one history or line search for everything they optimize; any optimizer that does not
    declare itself per-image). ImageLBFGS's default path is per image.
    """
    config = merged_config(sweep, point)
    if not keeps_images_independent(config):
        return None
    for args in _loss_args(config).values():
        args.pop("weight", None)
    if get_key(config, "model.init", "content") != "noise":
        config.pop(SEED_KEY, None)
    config.pop("output", None)
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    content, size = data.pop("content", None), data.get("size", 256)
    for key in PER_IMAGE_INPUTS:
        data.pop(key, None)
    if content is not None and isinstance(size, int):
        shapes = {} if shapes is None else shapes
        if (str(content), size) not in shapes:
            shapes[str(content), size] = shape_at(content, size)
        data["output_shape"] = list(shapes[str(content), size])
    return json.dumps(config, sort_keys=True, default=str)


def plan_batches(sweep: Sweep, points: list[Point], max_batch: int) -> list[list[Point]]:
    """Split ``points`` into batches of at most ``max_batch`` that can run as one batched tensor."""
    if max_batch <= 1:
        return [[p] for p in points]
    groups: dict[str, list[Point]] = {}
    alone = []
    shapes: dict[tuple[str, int], tuple[int, int]] = {}
    for p in points:
        key = batch_key(sweep, p, shapes)
        if key is None:
            alone.append([p])
        else:
            groups.setdefault(key, []).append(p)
    chunks = [g[i : i + max_batch] for g in groups.values() for i in range(0, len(g), max_batch)]
    return chunks + alone
