"""The temporal loss of video style transfer (Ruder, Dosovitskiy and Brox 2016): stay close to the previous
frame's output where the optical flow says it moved to.

``(weight / D) Σ_j Σ_p c_j(p) (x(p) − ω_j(p))²`` with ``x`` the frame being optimized, ``ω_j`` an earlier frame's
output warped into this frame by the flow, ``c_j`` its weight (the flow's reliability, 1 or 0; with several earlier
frames, Ruder et al.'s long-term weights, each pixel held by its closest reliable frame:
:func:`nst_lightning.video.warp.closest_reliable`) and ``D = 3·H·W``: a mean over the image's values, so the weight
does not depend on the size. Until a reference is set (the first frame of a clip) it is 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nst_lightning.model.losses.base import LossTerm, float32_only


class TemporalLoss(LossTerm):
    """Masked mean squared difference to the previous frame's warped output; see the module's docstring.

    The frames' driver (``VideoFrames``) sets the reference of each frame with :meth:`set_reference`.
    """

    supports_sample_weights = True
    reads_content = False

    def __init__(self, weight: float = 10.0) -> None:
        super().__init__(weight, ())
        self.register_buffer("warped", None, persistent=False)
        self.register_buffer("reliable", None, persistent=False)

    def set_reference(self, warped: Tensor | list[Tensor] | None, reliable: Tensor | list[Tensor] | None = None) -> None:
        """``warped``: an earlier output warped into this frame (N×3×H×W, or 1×3×H×W for every image), or a list of
        them; ``reliable``: the weight of each (N×1×H×W in [0, 1]; default 1 everywhere). None: no reference."""
        if warped is None:
            self.warped = self.reliable = None
            return
        warped = list(warped) if isinstance(warped, (list, tuple)) else [warped]
        if reliable is None:
            reliable = [torch.ones_like(w[:, :1]) for w in warped]
        reliable = list(reliable) if isinstance(reliable, (list, tuple)) else [reliable]
        if len(reliable) != len(warped):
            raise ValueError(f"TemporalLoss: {len(reliable)} masks for {len(warped)} references")
        self.warped = torch.stack([w.detach().float() for w in warped])  # K×N×3×H×W
        self.reliable = torch.stack([r.detach().float() for r in reliable])  # K×N×1×H×W

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            if self.warped is None:
                return self.weighted(image.new_zeros(image.shape[0], dtype=torch.float32))
            x = image.float()
            squared = (self.reliable * (x - self.warped).pow(2)).sum(0)
            return self.weighted(squared.flatten(1).mean(1))
