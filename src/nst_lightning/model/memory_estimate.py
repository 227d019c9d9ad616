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
- **style passes** (:meth:`CostModel.target_bytes`): making the style targets sends each style image forward
  through the backbone at ``style_scale`` times the size; with a large ``style_scale`` that, not the step,
  is the run's peak;
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
    contents: int = 1,
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
        "images": image * (contents + styles * style_scale**2) + 2 * image * batch,  # contents, styles; image and grad
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


# Without a backbone that describes its layers: one forward and backward pass through VGG19 up to relu5_1,
# float32, per pixel of the input (README's Performance figures), with and without activation checkpointing.
FALLBACK_PASS_BYTES = 2800
FALLBACK_PASS_BYTES_CHECKPOINTED = 1800


@dataclass(frozen=True)
class CostModel:
    """The run's one memory model: :func:`estimate_parts` for its backbone layers, split into what one pass
    through the backbone costs (tiling bounds it by the tile) and what is kept per pixel of the whole image.

    ``layers`` are the backbone's (``Backbone.feature_layers()``; empty when it does not describe them: then the
    pass costs :data:`FALLBACK_PASS_BYTES` per pixel and :meth:`run_bytes` is None). ``requested`` are the
    layers the loss terms read, ``content_layers`` those whose target features are kept at full size.
    """

    layers: tuple[FeatureLayer, ...]
    requested: frozenset[str]
    content_layers: frozenset[str] = frozenset()
    checkpointing: bool = False
    styles: int = 1
    style_scale: float = 1.0
    contents: int = 1  # content images: one per image when each image of a batch has its own

    def _parts(self, height: int, width: int, batch: int, vectors: int = 0, styles: int = 0) -> dict[str, int]:
        parts = estimate_parts(height, width, batch, self.layers, self.requested, "sgd", 0, self.checkpointing,
                               self.content_layers, styles, self.style_scale, self.contents)
        return parts | {"optimizer": 3 * height * width * FLOAT32 * batch * vectors}

    def pass_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """One forward and backward pass over a ``height``×``width`` input (a tile, or the whole image)."""
        if not self.layers:
            per_pixel = FALLBACK_PASS_BYTES_CHECKPOINTED if self.checkpointing else FALLBACK_PASS_BYTES
            return int(per_pixel * height * width * batch)
        parts = self._parts(height, width, batch)
        return int((parts["activations"] + parts["backward"]) * OVERHEAD)

    def pass_bytes_per_pixel(self, batch: int = 1) -> float:
        """:meth:`pass_bytes` per input pixel (the model is linear in the pixel count)."""
        return self.pass_bytes(64, 64, batch) / (64 * 64)

    def state_bytes(self, height: int, width: int, batch: int, vectors: int) -> int:
        """What the run keeps for the whole image whatever the tiles: the content and style images, the image
        and its gradient, the content targets and ``vectors`` image-sized optimizer vectors (exact)."""
        parts = self._parts(height, width, batch, vectors, self.styles)
        return int((parts["images"] + parts["targets"]) * OVERHEAD + parts["optimizer"])

    def step_bytes(self, height: int, width: int, batch: int, vectors: int) -> int | None:
        """The untiled optimization step's peak, as :func:`estimate_bytes`; None without the backbone's layers."""
        if not self.layers:
            return None
        return self.pass_bytes(height, width, batch) + self.state_bytes(height, width, batch, vectors) + FIXED_BYTES

    def style_pass_bytes(self, height: int, width: int) -> int:
        """The style targets' passes for a ``height``×``width`` content, untiled: each style image, ``style_scale``
        times the content's size, goes forward through the backbone without gradients; the requested layers'
        outputs of every style are kept until the targets are made, plus the two largest feature maps in flight."""
        if not self.layers:
            return 0
        pixels = height * width * self.style_scale**2
        deepest = max((i for i, layer in enumerate(self.layers) if layer.name in self.requested),
                      default=len(self.layers) - 1)
        used = self.layers[: deepest + 1]
        maps = [layer.channels * pixels / layer.stride**2 * FLOAT32 for layer in used]
        kept = sum(size for layer, size in zip(used, maps) if layer.name in self.requested)
        # a layer that keeps nothing for the backward pass works in place (ReLU): only the others allocate
        in_flight = max((a + b for layer, a, b in zip(used, [3 * pixels * FLOAT32, *maps], maps) if layer.keeps),
                        default=0.0)
        return int(kept * self.styles + in_flight)  # no backward: none of the step's temporaries (OVERHEAD)

    def target_bytes(self, height: int, width: int, batch: int) -> int | None:
        """The peak while the targets are made untiled (before the optimizer keeps anything): the images, the
        content targets and the style passes; None without the backbone's layers."""
        if not self.layers:
            return None
        return self.style_pass_bytes(height, width) + self.state_bytes(height, width, batch, 0) + FIXED_BYTES

    def run_bytes(self, height: int, width: int, batch: int, vectors: int) -> int | None:
        """The untiled run's peak: its steps, or making its targets when the style images are the larger
        (:meth:`step_bytes`, :meth:`target_bytes`); None without the backbone's layers."""
        step = self.step_bytes(height, width, batch, vectors)
        if step is None:
            return None
        return max(step, self.target_bytes(height, width, batch) or 0)
