"""VGG16 and VGG19 with the literature's layer names (conv1_1, relu1_1, pool1, ...)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from nst_lightning.errors import ConfigValueError
from nst_lightning.model.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone
from nst_lightning.model.backbones.geometry import LayerGeometry, walk
from nst_lightning.model.backbones.weights import (
    WeightsError,
    caffe_vgg19_conv_weights,
    load_state_dict,
)
from nst_lightning.model.memory_estimate import FeatureLayer

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _vgg_layer_names(blocks: tuple[int, ...]) -> list[str]:
    names = []
    for b, convs in enumerate(blocks, start=1):
        for c in range(1, convs + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return names


class _VGG(Backbone):
    """VGG with the literature's layer names (conv1_1, relu1_1, pool1, ...)."""

    blocks: tuple[int, ...] = ()
    channels = (64, 128, 256, 512, 512)
    torchvision_builder = ""

    def __init__(
        self,
        weights: str = "torchvision",
        pooling: Literal["max", "avg"] = "max",
        input_norm: Literal["auto", "caffe", "imagenet"] = "auto",
        channels_last: bool = True,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.activation_checkpointing = activation_checkpointing
        if pooling not in ("max", "avg"):
            raise ConfigValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.weights = weights
        self.pooling = pooling
        self.channels_last = channels_last
        self._names = tuple(_vgg_layer_names(self.blocks))
        modules: list[nn.Module] = []
        in_ch = 3
        # With weights to load, the convolutions start as shapes only ("meta" tensors): no random
        # initialization to overwrite and no second copy of the weights at the peak of memory use.
        device = None if weights == "none" else "meta"
        for b, convs in enumerate(self.blocks):
            for _ in range(convs):
                # In-place ReLU: the pre-activation is never kept, so one activation less at a time.
                conv = nn.Conv2d(in_ch, self.channels[b], 3, padding=1, device=device)
                modules += [conv, nn.ReLU(inplace=True)]
                in_ch = self.channels[b]
            modules.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        if input_norm == "auto":
            input_norm = "caffe" if weights == "caffe" else "imagenet"
        self.input_norm = input_norm
        self._load_weights(weights)
        if input_norm == "caffe":
            # RGB [0,1] -> BGR [0,255] minus the Caffe mean, folded into one affine map.
            self.register_buffer("_scale", torch.full((1, 3, 1, 1), 255.0), persistent=False)
            self.register_buffer(
                "_shift", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False
            )
            self._bgr = True
        elif input_norm == "imagenet":
            self.register_buffer("_scale", 1.0 / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
            self.register_buffer(
                "_shift", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                persistent=False,
            )
            self._bgr = False
        else:
            raise ConfigValueError(f"input_norm must be 'auto', 'caffe' or 'imagenet', not {input_norm!r}")
        if channels_last:
            self.features.to(memory_format=torch.channels_last)
        self.freeze()

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self._names

    def _load_weights(self, weights: str) -> None:
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        if weights == "none":
            return
        if weights == "caffe":
            if type(self).__name__ != "VGG19":
                raise WeightsError(f"'caffe' weights exist only for VGG19, not {type(self).__name__}")
            for conv, (w, b) in zip(convs, caffe_vgg19_conv_weights(), strict=True):
                conv.weight, conv.bias = nn.Parameter(w), nn.Parameter(b)
            return
        if weights == "torchvision":
            import torchvision

            model = getattr(torchvision.models, self.torchvision_builder)(weights="IMAGENET1K_V1")
            state = model.features.state_dict()
        else:
            state = load_state_dict(weights)
            state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        # assign=True takes the state's tensors as they are, so make them float32 (a half-precision file too).
        state = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}
        try:
            self.features.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise WeightsError(f"weights {weights!r} do not fit {type(self).__name__}: {first}") from None

    def feature_layers(self) -> list[FeatureLayer]:
        """Every layer still in ``features``: a convolution keeps its float32 output (the in-place ReLU after it
        nothing more), a max-pool its output and its int64 indices, an average pool its output."""
        out, stride = [], 1
        for name, module in zip(self._names, self.features):
            if isinstance(module, nn.Conv2d):
                out.append(FeatureLayer(name, module.out_channels, stride, 4))
            elif isinstance(module, nn.ReLU):
                out.append(FeatureLayer(name, out[-1].channels, stride, 0))
            else:
                stride *= 2
                out.append(FeatureLayer(name, out[-1].channels, stride, 12 if isinstance(module, nn.MaxPool2d) else 4))
        return out

    def layer_geometry(self, layer: str) -> LayerGeometry | None:
        self.check_layers([layer])
        index = self._names.index(layer)
        if not hasattr(self, "_geometry"):
            self._geometry = walk(self.features)
        return self._geometry[index] if index < len(self._geometry) else None

    def truncate(self, layers: Collection[str]) -> None:
        self.check_layers(layers)
        if not layers:
            return
        last = max(self._names.index(name) for name in layers)
        self.features = self.features[: last + 1]

    def _run(self, start: int, stop: int, x: Tensor) -> Tensor:
        for i in range(start, stop):
            module = self.features[i]
            if i == start and isinstance(module, nn.ReLU):
                # x is the previous segment's output, a returned feature (a conv layer's): never overwrite it.
                x = torch.relu(x)
            else:
                x = module(x)
        return x

    def normalize(self, image: Tensor) -> Tensor:
        """RGB in [0, 1] to what the weights expect: Caffe's BGR in [0, 255] minus the mean, or ImageNet's."""
        x = image.flip(1) if self._bgr else image
        return x * self._scale - self._shift

    def forward(self, image: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
        x = self.normalize(image)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, Tensor] = {}
        start = 0
        # One segment from each requested layer to the next; with activation checkpointing only the
        # requested layers' outputs are kept for the backward pass, the rest is computed again.
        for stop in sorted({self._names.index(name) + 1 for name in layers}):
            if self.activation_checkpointing and x.requires_grad:
                x = checkpoint(self._run, start, stop, x, use_reentrant=False)
            else:
                x = self._run(start, stop, x)
            out[self._names[stop - 1]] = x
            start = stop
        return out


class VGG19(_VGG):
    """VGG19 (Simonyan & Zisserman). ``weights``: ``caffe`` (default; original weights, offline),
    ``torchvision`` (IMAGENET1K_V1, downloads), a path to a local state_dict, or ``none``.

    ``channels_last`` runs the convolutions in NHWC (faster on CPUs and GPUs); ``activation_checkpointing``
    keeps only the requested layers' outputs for the backward pass and computes the rest again: less
    memory for very large images, at the cost of about one more forward pass per step.
    """

    blocks = (2, 2, 4, 4, 4)
    torchvision_builder = "vgg19"

    def __init__(
        self,
        weights: str = "caffe",
        pooling: Literal["max", "avg"] = "max",
        input_norm: Literal["auto", "caffe", "imagenet"] = "auto",
        channels_last: bool = True,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__(weights, pooling, input_norm, channels_last, activation_checkpointing)


class VGG16(_VGG):
    """VGG16 (Simonyan & Zisserman). ``weights``: ``torchvision`` (IMAGENET1K_V1, downloads),
    a path to a local state_dict, or ``none``."""

    blocks = (2, 2, 3, 3, 3)
    torchvision_builder = "vgg16"

    def __init__(
        self,
        weights: str = "torchvision",
        pooling: Literal["max", "avg"] = "max",
        input_norm: Literal["auto", "caffe", "imagenet"] = "auto",
        channels_last: bool = True,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__(weights, pooling, input_norm, channels_last, activation_checkpointing)
