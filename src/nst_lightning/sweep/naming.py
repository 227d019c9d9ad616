"""Point names: file-safe, unique, and made of the parameters that vary; short labels for the contact sheet."""

from __future__ import annotations

import collections
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from nst_lightning.sweep.spec import Point, Sweep, SweepError, _canonical, varying_keys

NAME_LIMIT = 100


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
    counts = collections.Counter(names)
    for p, name in zip(points, names):
        p.name = name if counts[name] == 1 else f"{name}-{_digest(p.params)}"
    counts = collections.Counter(p.name for p in points)
    repeated = next((p for p in points if counts[p.name] > 1), None)
    if repeated is not None:
        same = ", ".join(f"{key}={value}" for key, value in repeated.params.items())
        raise SweepError(f"sweep: two points have the same parameters ({same}); give each value once")


def output_path(sweep: Sweep, point: Point) -> Path:
    path = (sweep.output_dir / f"{point.name}.png").resolve()
    if path.parent != sweep.output_dir:  # name_points makes this impossible; keep the promise checked
        raise SweepError(f"point name {point.name!r} leaves the output directory")
    return path
