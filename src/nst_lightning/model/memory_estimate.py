"""How much memory a run needs: a pure estimate from the image size and the run's settings.

:func:`estimate_bytes` adds up, for float32 work, the memory a run holds at its busiest moment
(one optimizer step, forward and backward), over what the process held before the run (the
libraries and the backbone's weights):

- **activations**: every tensor the backbone keeps for the backward pass, layer by layer up to the
  deepest layer in use (each layer says what it keeps per output element, see :class:`FeatureLayer`);
  with activation checkpointing only the requested layers' outputs are kept, plus the longest
  segment between two of them while it is computed again;
- **backward**: the gradients in flight, about twice the largest feature map;
- **targets and images**: the content image, the style images (``style_scale`` times the size),
  the image being optimized and its gradient, and the content layers' target features;
- **optimizer state**: L-BFGS keeps ``2 * history_size + 4`` image-sized vectors, Adam 3, SGD 2.

Everything scales with the pixel count and the batch, so the figure is linear in ``height * width``.
It was calibrated against the peak resident memory of real runs on a CPU (see
``tests/test_memory_check.py`` and README's Robustness section); ``OVERHEAD`` covers the allocator's
slack and the loss terms' temporaries, ``FIXED_BYTES`` the libraries' work buffers; the optimizer's
state is exact. Tiled optimization (when it exists) estimates one tile.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

# Calibrated on a CPU (see the module's docstring): the measured peak is about OVERHEAD times the modelled
# tensors (the convolutions' and the loss terms' temporaries, the allocator's slack) plus FIXED_BYTES
# (work buffers the libraries allocate on the first step, decoding the images).
OVERHEAD = 1.5
FIXED_BYTES = 64 * 2**20

FLOAT32 = 4


@dataclass(frozen=True)
class FeatureLayer:
    """One backbone layer, as the memory estimate sees it.

    Args:
        name: its name (``relu3_1``).
        channels: output channels.
        stride: how much smaller than the input image its output is, on each side (1, 2, 4 ...).
        keeps: bytes kept for the backward pass per output element: 4 for a float32 convolution output,
            0 for an in-place ReLU, 4 + 8 for a max-pool (its output and int64 indices).
    """

    name: str
    channels: int
    stride: int
    keeps: float


def optimizer_vectors(optimizer: str, history_size: int = 100) -> int:
    """Image-sized float vectors an optimizer keeps: ``lbfgs`` (its history pairs and work vectors), ``adam``, ``sgd``."""
    kind = optimizer.lower()
    if "lbfgs" in kind:
        return 2 * history_size + 4
    if "adam" in kind:
        return 3
    return 2


def estimate_parts(
    height: int,
    width: int,
    batch: int,
    layers: Sequence[FeatureLayer],
    requested: Collection[str],
    optimizer: str = "lbfgs",
    history_size: int = 100,
    activation_checkpointing: bool = False,
    content_layers: Collection[str] = (),
    styles: int = 1,
    style_scale: float = 1.0,
) -> dict[str, int]:
    """The estimate of :func:`estimate_bytes`, part by part (``activations``, ``backward``, ``images``,
    ``targets``, ``optimizer``), before ``OVERHEAD``."""
    pixels = height * width
    by_name = {layer.name: layer for layer in layers}
    deepest = max((i for i, layer in enumerate(layers) if layer.name in requested), default=len(layers) - 1)
    used = layers[: deepest + 1]

    def elements(layer: FeatureLayer) -> float:
        return layer.channels * pixels / layer.stride**2

    kept = [elements(layer) * layer.keeps for layer in used]
    input_bytes = 3 * pixels * FLOAT32  # the normalized image, the first convolution's input
    if activation_checkpointing:
        segments, current = [], 0.0
        for layer, size in zip(used, kept):
            current += size
            if layer.name in requested:
                segments.append(current)
                current = 0.0
        activations = input_bytes + sum(elements(by_name[n]) * FLOAT32 for n in requested if n in by_name)
        activations += max(segments, default=0.0)
    else:
        activations = input_bytes + sum(kept)
    largest = max((elements(layer) * FLOAT32 for layer in used), default=0.0)
    image = 3 * pixels * FLOAT32
    parts = {
        "activations": activations * batch,
        "backward": 2 * largest * batch,
        "images": image * (1 + styles * style_scale**2) + 2 * image * batch,  # content, styles; image and grad
        "targets": sum(elements(by_name[n]) * FLOAT32 for n in content_layers if n in by_name),
        "optimizer": optimizer_vectors(optimizer, history_size) * image * batch,
    }
    return {name: int(value) for name, value in parts.items()}


def estimate_bytes(
    height: int,
    width: int,
    batch: int,
    layers: Sequence[FeatureLayer],
    requested: Collection[str],
    optimizer: str = "lbfgs",
    history_size: int = 100,
    activation_checkpointing: bool = False,
    content_layers: Collection[str] = (),
    styles: int = 1,
    style_scale: float = 1.0,
) -> int:
    """Bytes a run of ``batch`` images of ``height`` × ``width`` needs at its peak (see the module's docstring).

    Args:
        height, width: the optimized image's size in pixels.
        batch: images optimized together (a batched sweep).
        layers: the backbone's layers in forward order (``Backbone.feature_layers()``).
        requested: the layers the losses read.
        optimizer: ``lbfgs``, ``adam`` or ``sgd`` (any name containing one of them).
        history_size: L-BFGS's history length.
        activation_checkpointing: whether the backbone recomputes activations in the backward pass.
        content_layers: layers whose target features are kept (the content loss's).
        styles: the number of style images; ``style_scale``: their size relative to the content's.
    """
    parts = estimate_parts(height, width, batch, layers, requested, optimizer, history_size,
                           activation_checkpointing, content_layers, styles, style_scale)
    return int((sum(parts.values()) - parts["optimizer"]) * OVERHEAD + parts["optimizer"] + FIXED_BYTES)


def largest_fitting_size(budget: int, long_edge: int, estimate: Callable[[int], int]) -> int:
    """The largest long edge (a multiple of 16, at least 16) whose ``estimate(long_edge)`` fits in ``budget`` bytes,
    below ``long_edge``; 0 if none does. ``estimate`` maps a long edge to bytes and grows with it."""
    low, high = 0, max(0, long_edge // 16)
    while low < high:  # the largest k with estimate(16 k) <= budget
        mid = (low + high + 1) // 2
        if estimate(16 * mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return 16 * low
