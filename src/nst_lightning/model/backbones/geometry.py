"""Where a feature comes from: the pixels each position of a layer reads (for tiling).

A position ``q`` of a layer reads the input pixels ``[q·jump + start, q·jump + start + size)`` along each
axis: ``size`` is the layer's receptive field, ``jump`` its stride in pixels and ``start`` the offset that
the convolutions' padding adds. :func:`walk` computes them for a plain stack of convolutions, pools and
pointwise modules, as VGG is; ``sizes`` gives a layer's feature size for an input size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn


def _pair(value: int | tuple[int, ...]) -> int:
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise ValueError(f"only square kernels, strides and paddings are supported, not {value}")
        return int(value[0])
    return int(value)


@dataclass(frozen=True)
class LayerGeometry:
    """The receptive field of one layer's positions, along either axis (the layers are square)."""

    size: int = 1  # receptive field in pixels
    jump: int = 1  # stride of the layer's positions in pixels
    start: int = 0  # pixel offset of position 0's field (negative: it reaches into the padding)
    ops: tuple[tuple[int, int, int], ...] = field(default=())  # (kernel, stride, padding) of each resizing op

    def feature_size(self, pixels: int) -> int:
        """The layer's number of positions along an axis of ``pixels`` input pixels."""
        n = pixels
        for kernel, stride, padding in self.ops:
            n = (n + 2 * padding - kernel) // stride + 1
        return n

    @property
    def margin_before(self) -> int:
        """Pixels a position's field reaches before the pixels it owns (``[q·jump, (q+1)·jump)``)."""
        return max(0, -self.start)

    @property
    def margin_after(self) -> int:
        """Pixels a position's field reaches after the pixels it owns."""
        return max(0, self.start + self.size - self.jump)


def walk(modules: Iterable[nn.Module]) -> list[LayerGeometry]:
    """The geometry after each module of a sequential stack of convolutions, pools and pointwise modules."""
    geometry = LayerGeometry()
    out = []
    for module in modules:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel, stride, padding = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
            dilation = _pair(getattr(module, "dilation", 1))
            if dilation != 1:
                raise ValueError("dilated layers are not supported")
            geometry = LayerGeometry(
                size=geometry.size + (kernel - 1) * geometry.jump,
                jump=geometry.jump * stride,
                start=geometry.start - padding * geometry.jump,
                ops=(*geometry.ops, (kernel, stride, padding)),
            )
        elif not isinstance(module, (nn.ReLU, nn.Identity, nn.LeakyReLU, nn.GELU, nn.SiLU)):
            raise TypeError(f"{type(module).__name__} has no known receptive field")
        out.append(geometry)
    return out
