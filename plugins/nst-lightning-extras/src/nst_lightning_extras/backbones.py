"""A non-VGG backbone: torchvision's ResNet family, with torchvision's layer names."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

import torch
import torchvision
from torch import Tensor, nn

from nst_lightning.plugin import IMAGENET_MEAN, IMAGENET_STD, Backbone, ConfigValueError, WeightsError, load_state_dict

Arch = Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]
STEM = ("conv1", "bn1", "relu", "maxpool")
STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNet(Backbone):
    """A torchvision ResNet (default ResNet-50) as a frozen feature extractor.

    Layer names are torchvision's module names: the stem ``conv1``, ``bn1``, ``relu``, ``maxpool``;
    every residual block ``layer1.0`` … ``layer4.2``; and each stage's output ``layer1`` … ``layer4``
    (the same tensor as the stage's last block). Input: RGB in [0, 1], normalized here with the
    ImageNet mean and standard deviation. Batch norm always uses its running statistics.

    Args:
        arch: the torchvision builder, ``resnet50`` by default.
        weights: ``torchvision`` (the builder's default ImageNet weights; downloads once), a path to a
            local ``state_dict`` with torchvision's keys (``fc.*`` may be missing), or ``none``
            (random weights, for tests).
    """

    def __init__(self, arch: Arch = "resnet50", weights: str = "torchvision") -> None:
        super().__init__()
        builder = getattr(torchvision.models, arch, None)
        if builder is None or not arch.startswith(("resnet", "resnext", "wide_resnet")):
            raise ConfigValueError(f"ResNet: unknown arch {arch!r}")
        self.arch = arch
        self.weights = weights
        model = builder(weights="DEFAULT" if weights == "torchvision" else None)
        if weights not in ("torchvision", "none"):
            state = {k: v for k, v in load_state_dict(weights).items() if not k.startswith("fc.")}
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0]
                raise WeightsError(f"weights {weights!r} do not fit {arch}: {first}") from None
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise WeightsError(
                    f"weights {weights!r} do not fit {arch}: "
                    f"{len(missing)} missing keys (e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})"
                )
        names: list[str] = []
        modules: list[nn.Module] = []
        for name in STEM:
            names.append(name)
            modules.append(getattr(model, name))
        self.stage_ends: dict[str, str] = {}
        for stage in STAGES:
            blocks = getattr(model, stage)
            for j, block in enumerate(blocks):
                names.append(f"{stage}.{j}")
                modules.append(block)
            self.stage_ends[f"{stage}.{len(blocks) - 1}"] = stage
        self.blocks = nn.ModuleList(modules)
        self._block_names = tuple(names)
        self._names = tuple(n for name in names for n in (name, self.stage_ends.get(name)) if n)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self._names

    def _block_index(self, layer: str) -> int:
        stage_block = {stage: block for block, stage in self.stage_ends.items()}
        return self._block_names.index(stage_block.get(layer, layer))

    def truncate(self, layers: Collection[str]) -> None:
        self.check_layers(layers)
        if layers:
            keep = max(self._block_index(name) for name in layers) + 1
            self.blocks = self.blocks[:keep]
            self._block_names = self._block_names[:keep]

    def forward(self, image: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
        x = (image - self.mean) / self.std
        wanted = set(layers)
        out: dict[str, Tensor] = {}
        for name, module in zip(self._block_names, self.blocks):
            if len(out) == len(wanted):
                break
            x = module(x)
            for key in (name, self.stage_ends.get(name)):
                if key in wanted:
                    out[key] = x
        return out
