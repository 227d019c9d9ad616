"""Temporal consistency of a stylized clip: the warping error between consecutive output frames.

For frames t-1 and t, the output of t-1 is warped into frame t with the *content's* flow (from frame t to frame
t-1), and compared with the output of t where that flow is reliable:
``Σ_p c(p) ‖y_t(p) − warp(y_{t-1})(p)‖² / (3 Σ_p c(p))`` (a mean squared difference per value, images in [0, 1]).
A clip that does not flicker scores near 0; stylizing each frame alone scores higher, because each frame's
optimum moves on its own. ``VideoScores`` keeps it with each frame's style and content distances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nst_lightning.image.io import load_image
from nst_lightning.quality.distances import (
    blend,
    content_distance_from,
    image_statistics,
    style_distance_from_grams,
    style_targets,
)
from nst_lightning.quality.metrics import MeanDistance, ssim_by_tiles
from nst_lightning.video.flow import DISFlow, FlowCache, OpticalFlow
from nst_lightning.video.io import VideoError, read_clip
from nst_lightning.video.warp import warp


def warping_errors(previous: Tensor, current: Tensor, flow_to_previous: Tensor, reliable: Tensor) -> Tensor:
    """Per image (N,): the masked mean squared difference between ``current`` and ``previous`` warped into it."""
    warped = warp(previous.float(), flow_to_previous)
    squared = reliable * (current.float() - warped).pow(2)
    return squared.sum((1, 2, 3)) / (3 * reliable.sum((1, 2, 3))).clamp_min(1)


class WarpingError(MeanDistance):
    """The mean over frame pairs of :func:`warping_errors` (``update(previous, current, flow_to_previous, reliable)``
    once per pair), and the worst pair (``worst`` after ``compute``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("worst", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="max")

    def update(self, previous: Tensor, current: Tensor, flow_to_previous: Tensor, reliable: Tensor) -> None:
        errors = warping_errors(previous, current, flow_to_previous, reliable).double()
        self._add(errors)
        self.worst = torch.maximum(self.worst, errors.max())


@dataclass
class VideoScores:
    """Each frame's style and content distances, and the warping error between neighbours; :meth:`summary` gives
    their means and worst values."""

    style: list[float] = field(default_factory=list)
    content: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    warping: WarpingError = field(default_factory=WarpingError)
    border_warping: WarpingError = field(default_factory=WarpingError)  # the pairs at chunks' borders alone
    _styles: list[Tensor] | None = field(default=None, repr=False)
    _targets: list[dict[str, Tensor]] = field(default_factory=list, repr=False)

    def add_frame(self, output: Tensor, content: Tensor, styles: list[Tensor], weights: list[float]) -> None:
        """One output frame against its content frame and the style images (at the size the run used)."""
        content = content.to(output.device, torch.float32)
        statistics = image_statistics(output.float(), content=content)  # one pass for both distances
        if self._styles is None or len(styles) != len(self._styles) or not all(
                a.shape == b.shape and torch.equal(a, b) for a, b in zip(styles, self._styles)):
            self._styles, self._targets = list(styles), style_targets(styles)  # recomputed only when they change
        self.style.append(float(style_distance_from_grams(statistics.grams, blend(self._targets, weights)).mean()))
        self.content.append(float(content_distance_from(statistics).mean()))
        self.ssim.append(float(ssim_by_tiles(output.float(), content).mean()))

    def add_pair(self, previous: Tensor, current: Tensor, flow_to_previous: Tensor, reliable: Tensor,
                 border: bool = False) -> None:
        """Two neighbouring output frames; ``border``: the pair lies where two chunks meet (counted in both)."""
        flow_to_previous, reliable = flow_to_previous.to(current.device), reliable.to(current.device)
        self.warping.update(previous, current, flow_to_previous, reliable)
        if border:
            self.border_warping.update(previous, current, flow_to_previous, reliable)

    def state(self) -> dict[str, Any]:
        """The scores so far (a checkpoint keeps them for a resumed run)."""
        return {"style": list(self.style), "content": list(self.content), "ssim": list(self.ssim),
                "warping": {k: v.cpu() for k, v in self.warping.metric_state.items()},
                "border_warping": {k: v.cpu() for k, v in self.border_warping.metric_state.items()}}

    def load(self, state: dict[str, Any]) -> None:
        self.style, self.content, self.ssim = list(state["style"]), list(state["content"]), list(state["ssim"])
        for metric, saved in ((self.warping, state["warping"]), (self.border_warping, state.get("border_warping", {}))):
            for key, value in saved.items():
                setattr(metric, key, value.clone())

    def summary(self) -> dict[str, Any]:
        """``style_distance``, ``content_distance`` (the frames' means), ``worst_style_distance``,
        ``worst_content_distance``, ``ssim`` (the frames' mean), ``warping_error`` (mean over pairs), ``worst_warping_error``,
        ``border_warping_error`` (the mean over the pairs where chunks meet, when there are any), ``frames``."""
        row: dict[str, Any] = {"frames": len(self.style)}
        if self.style:
            row.update(style_distance=sum(self.style) / len(self.style), worst_style_distance=max(self.style),
                       content_distance=sum(self.content) / len(self.content), worst_content_distance=max(self.content),
                       ssim=sum(self.ssim) / len(self.ssim))
        if int(self.warping.count) > 0:
            row.update(warping_error=float(self.warping.compute()), worst_warping_error=float(self.warping.worst))
        if int(self.border_warping.count) > 0:
            row.update(border_warping_error=float(self.border_warping.compute()))
        return row


def score_clip(output: str, content: str, styles: list[str], weights: list[float] | None = None,
               style_scale: float = 1.0, flow: OpticalFlow | None = None, flow_cache: str | None = None) -> dict[str, Any]:
    """The scores of a stylized clip (a video file or a folder of frames) against its content clip and style
    images, as a video run reports them (:meth:`VideoScores.summary`), with ``width`` and ``height``: each output
    frame against the content frame at its size, and the warping error with the content's flow (``flow``, default
    ``DISFlow``, cached in ``flow_cache``)."""
    out = read_clip(output)
    height, width = out.size
    source = read_clip(content, max(height, width))
    if len(source.frames) != len(out.frames) or source.size != out.size:
        raise VideoError(f"{output!r} has {len(out.frames)} frames of {width}x{height} px, but the content clip "
                         f"{content!r} gives {len(source.frames)} of {source.size[1]}x{source.size[0]} px; score a "
                         "clip against the one it was made from")
    style_images = [load_image(path, max(16, round(max(height, width) * style_scale)), "style image") for path in styles]
    weights = list(weights) if weights is not None else [1.0] * len(styles)
    flows = FlowCache(flow if flow is not None else DISFlow(), flow_cache)
    scores = VideoScores()
    for t in range(len(out.frames)):
        scores.add_frame(out.frame(t), source.frame(t), style_images, weights)
        if t:
            scores.add_pair(out.frame(t - 1), out.frame(t), *flows.between(source.frames[t], source.frames[t - 1]))
    return {**scores.summary(), "width": width, "height": height}


def format_clip_score(row: dict[str, Any]) -> str:
    """``style 0.0254 (worst 0.0273)  content 0.59 (worst 0.611)  SSIM 0.403  warping error 0.0012 (worst 0.0015)``."""
    text = (f"style {row['style_distance']:.4g} (worst {row['worst_style_distance']:.4g})  content "
            f"{row['content_distance']:.4g} (worst {row['worst_content_distance']:.4g})  SSIM {row['ssim']:.3f}")
    if "warping_error" in row:
        text += f"  warping error {row['warping_error']:.4g} (worst {row['worst_warping_error']:.4g})"
    return text
