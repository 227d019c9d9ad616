"""The Python API: ``stylize`` and ``score`` for notebooks and scripts, with the command line's defaults, checks
and quiet output.

    from nst_lightning import stylize
    result = stylize("photo.jpg", "sample:starry_night.jpg", size=256)
    result                       # shows the picture in Jupyter
    result.distances             # {"style_distance": ..., "content_distance": ..., "ssim": ..., ...}
    result.save("out.png")

A run is exactly ``nst-lightning fit`` with the same config (``config="default"``, a shipped name or a file) and
the given overrides: the same Lightning module, stopping rule, memory pre-check and error messages.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from nst_lightning.available_memory import available_bytes
from nst_lightning.cli.fit import build_cli
from nst_lightning.image.io import save_png, to_pil
from nst_lightning.model.step import step_losses
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.quality.scoring import score_file
from nst_lightning.quality.scoring_memory import check_score_memory

ImageLike = str | Path | Image.Image | np.ndarray | Tensor


@dataclass
class Result:
    """A finished run: the picture, its quality, why it stopped and the loss of every step."""

    image: Image.Image
    distances: dict[str, float]
    stop_reason: str | None
    losses: list[dict[str, float]] = field(default_factory=list)  # one dict per step: each term and the total
    config: str = ""  # the run's full config (YAML), as the PNG's metadata holds it

    def save(self, path: str | Path) -> Path:
        """Write the picture as a PNG with the run's config in its metadata (an existing file is not replaced)."""
        return save_png(torch.from_numpy(np.asarray(self.image)).permute(2, 0, 1)[None].float().div(255),
                        Path(path), {"Software": "nst-lightning", "nst-lightning:config": self.config})

    def _repr_png_(self) -> bytes:  # Jupyter shows the picture
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

    def __repr__(self) -> str:
        quality = ", ".join(f"{k} {v:.4g}" for k, v in self.distances.items() if k in ("style_distance", "content_distance"))
        return f"Result({self.image.width}x{self.image.height} px; {quality}; {self.stop_reason})"


class _LossHistory(pl.Callback):
    """Each step's losses, as the step returned them: kept on the device during the run (no host sync per
    step) and read back once, at the end (:meth:`rows`)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        losses = step_losses(outputs)
        if losses is not None:
            self.steps.append(losses.sums())

    def rows(self) -> list[dict[str, float]]:
        if not self.steps:
            return []
        names = list(self.steps[0])
        values = torch.stack([torch.stack([step[n] for n in names]) for step in self.steps]).double().cpu().tolist()
        return [{**dict(zip(names, row)), "total": sum(row)} for row in values]


def _as_file(image: ImageLike, folder: Path, name: str) -> str:
    """A path for ``image``: a path or ``sample:NAME`` as it is; a PIL image, an H×W×3 array (uint8, or floats in
    [0, 1]) or a (1×)3×H×W tensor in [0, 1] saved as a PNG in ``folder``."""
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, Image.Image):
        image = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)[None].float().div(255)
    elif isinstance(image, np.ndarray):
        array = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"{name}: an array must be H×W×3 (RGB), not {tuple(image.shape)}")
        image = torch.from_numpy(array).permute(2, 0, 1)[None]
    elif isinstance(image, Tensor):
        image = image.detach().float().cpu()
        image = image[None] if image.dim() == 3 else image
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"{name}: a tensor must be 3×H×W or 1×3×H×W in [0, 1], not {tuple(image.shape)}")
    else:
        raise TypeError(f"{name}: give a path, a PIL image, a numpy array or a tensor, not {type(image).__name__}")
    return str(save_png(image.clamp(0, 1), folder / f"{name}.png", {}))


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    size: int | None = None,
    config: str | Path = "default",
    steps: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Result:
    """Stylize ``content`` with ``style`` (one image or several), as ``nst-lightning fit --config CONFIG`` would.

    Args:
        content, style: paths, ``sample:NAME`` images, PIL images, numpy arrays or tensors.
        size: the output's long edge in pixels (``data.size``); default: the config's.
        config: a shipped config's name (``default``, ``multiscale``, ``large``, ...) or a config file.
        steps: the most optimizer steps (``trainer.max_steps``); the config's stopping rule may end it sooner.
        seed: ``seed_everything``; default: the config's.
        overrides: any other settings by their dotted keys, as on the command line:
            ``{"model.losses.style.init_args.weight": 100, "model.init": "noise"}``.
        progress: print one line per logging step (``step 10/200  loss/content ...``).
    """
    load_plugins()
    folder = Path(tempfile.mkdtemp(prefix="nst-lightning-"))
    try:
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        style_files = [_as_file(s, folder, f"style_{i}") for i, s in enumerate(styles)]
        args = ["--config", str(config), "--data.content", _as_file(content, folder, "content"),
                "--data.style", style_files[0] if len(style_files) == 1 else json.dumps(style_files),
                "--output", str(folder / "result.png"), "--trainer.logger", "false",
                "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", str(progress).lower()]
        extra = {"data.size": size, "trainer.max_steps": steps, "seed_everything": seed, **(overrides or {})}
        for key, value in extra.items():
            if value is not None:
                args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        cli = build_cli(args, run=False)
        history = _LossHistory()
        cli.trainer.callbacks.append(history)
        try:
            cli.before_fit()
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        finally:
            cli.image_writer.release()
        report = cli.model.report
        return Result(to_pil(cli.model.output_image()), dict(report.quality[0]) if report.quality else {},
                      report.stop_reason, history.rows(), cli.image_writer.config or "")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def score(
    image: ImageLike,
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    size: int | None = None,
    style_blend_weights: Sequence[float] | None = None,
    style_scale: float = 1.0,
) -> dict[str, float]:
    """The style and content distances and SSIM of any image, as ``nst-lightning score`` prints them."""
    folder = Path(tempfile.mkdtemp(prefix="nst-lightning-"))
    try:
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        files = (_as_file(image, folder, "image"), _as_file(content, folder, "content"),
                 [_as_file(s, folder, f"style_{i}") for i, s in enumerate(styles)])
        check_score_memory(available_bytes("cpu"), *files, size, style_scale)  # as the command: before decoding
        return score_file(*files, size, style_blend_weights, style_scale, [])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
