"""Optical flow between two frames, as a pluggable component (``nst_register_flows``), and its cache on disk.

A flow is a 1×2×H×W float32 tensor of pixel offsets (x, then y) such that ``first(p) ≈ second(p + flow(p))``: it
says where each pixel of the first frame is in the second. The built-in methods are OpenCV's DIS (``DISFlow``),
fast on a CPU, DeepFlow (``DeepFlow``, OpenCV's contrib modules) and torchvision's RAFT (``RAFTFlow``); a plugin
registers a subclass of :class:`OpticalFlow` that implements :meth:`OpticalFlow.compute`.

Flows are cached on disk (:class:`FlowCache`), keyed by both frames' bytes, the method with its settings, and the
size, so that a second style of the same clip, or a run started again, does not compute them again.
"""

from __future__ import annotations

import abc
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nst_lightning.errors import ConfigError, ConfigValueError
from nst_lightning.files import atomic_write
from nst_lightning.video.extra import require
from nst_lightning.video.warp import reliability


class OpticalFlow(abc.ABC):
    """A method that estimates the flow from one frame to another (see the module's docstring)."""

    @abc.abstractmethod
    def compute(self, first: Tensor, second: Tensor) -> Tensor:
        """The flow from ``first`` to ``second`` (8-bit 3×H×W frames): 1×2×H×W float32 pixel offsets."""

    def identity(self) -> str:
        """The method and its settings, as the cache key names them (two settings that differ, two keys)."""
        settings = ",".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()) if not k.startswith("_"))
        return f"{type(self).__name__}({settings})"


DIS_PRESETS = ("ultrafast", "fast", "medium")


class DISFlow(OpticalFlow):
    """OpenCV's Dense Inverse Search (Kroeger et al. 2016) on the frames' grey levels (``opencv-python-headless``).

    Args:
        preset: ``ultrafast``, ``fast`` or ``medium`` (the default: about 0.03 s per pair at 512×384 on one CPU
            core, and accurate enough for the reliability masks).
    """

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise ConfigValueError(f"DISFlow: preset must be one of {', '.join(DIS_PRESETS)}, not {preset!r}")
        self.preset = preset

    def compute(self, first: Tensor, second: Tensor) -> Tensor:
        cv2 = require("cv2", "OpenCV (opencv-python-headless)")
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        return _dense_flow(cv2, cv2.DISOpticalFlow_create(presets[self.preset]), first, second)


DEEPFLOW_HINT = ("DeepFlow needs OpenCV's contrib modules (cv2.optflow): pip install opencv-contrib-python-headless "
                 "(in place of opencv-python-headless, which must be uninstalled first: both install the cv2 module)")


class DeepFlow(OpticalFlow):
    """OpenCV's DeepFlow (Weinzaepfel et al. 2013) on the frames' grey levels, from OpenCV's contrib modules
    (``cv2.optflow``, in ``opencv-contrib-python-headless``): about half DIS ``medium``'s endpoint error on a
    smooth motion, and about 30 times its time (docs/video.md)."""

    def __init__(self) -> None:
        if not hasattr(require("cv2", "OpenCV (opencv-python-headless)"), "optflow"):
            raise ConfigError(DEEPFLOW_HINT)

    def compute(self, first: Tensor, second: Tensor) -> Tensor:
        cv2 = require("cv2", "OpenCV (opencv-python-headless)")
        if not hasattr(cv2, "optflow"):
            raise ConfigError(DEEPFLOW_HINT)
        return _dense_flow(cv2, cv2.optflow.createOptFlow_DeepFlow(), first, second)


def _dense_flow(cv2, method, first: Tensor, second: Tensor) -> Tensor:
    """An OpenCV dense flow method's ``calc`` on the two frames' grey levels, as a 1×2×H×W float32 tensor."""
    grey = [cv2.cvtColor(np.ascontiguousarray(f.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY) for f in (first, second)]
    flow = method.calc(grey[0], grey[1], None)
    return torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0).float().contiguous()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nst-lightning/flows`` (``~/.cache/nst-lightning/flows``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nst-lightning" / "flows"


class FlowCache:
    """Flows computed once and kept in ``folder`` as ``.npy`` files named by the key of :meth:`key`."""

    def __init__(self, method: OpticalFlow, folder: str | os.PathLike | None = None) -> None:
        self.method = method
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def key(self, first: Tensor, second: Tensor) -> str:
        """A hash of both frames' bytes and size, and of the method with its settings."""
        digest = hashlib.sha256()
        for frame in (first, second):
            digest.update(repr(tuple(frame.shape)).encode())
            digest.update(frame.contiguous().numpy().tobytes())
        digest.update(self.method.identity().encode())
        return digest.hexdigest()

    def flow(self, first: Tensor, second: Tensor) -> Tensor:
        """The flow from ``first`` to ``second`` (8-bit 3×H×W frames), from the cache or computed and kept."""
        path = self.folder / f"{self.key(first, second)}.npy"
        if path.is_file():
            try:
                array = np.load(path, allow_pickle=False)
                if array.shape == (1, 2, *first.shape[-2:]):
                    return torch.from_numpy(array)
            except (OSError, ValueError):
                pass  # a damaged cache file is computed again
        flow = self.method.compute(first, second)
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, flow.numpy(), allow_pickle=False)
        with atomic_write(path) as f:
            f.write(buffer.getvalue())
        return flow

    def between(self, current: Tensor, earlier: Tensor) -> tuple[Tensor, Tensor]:
        """The flow from frame ``current`` to frame ``earlier`` (where each pixel of ``current`` was; 1×2×H×W) and
        where it is reliable (1×1×H×W), checked against the opposite flow: what warping an output of ``earlier``
        into ``current`` needs."""
        backward = self.flow(current, earlier)
        return backward, reliability(backward, self.flow(earlier, current))


RAFT_MODELS = ("large", "small")
RAFT_MIN_EDGE = 128


class RAFTFlow(OpticalFlow):
    """torchvision's RAFT (Teed and Deng 2020) with a weights file you give (nothing is downloaded): the state dict
    of ``torchvision.models.optical_flow.raft_large`` or ``raft_small``, e.g. saved from their pretrained weights.

    Args:
        weights: the ``.pth`` file of the model's state dict.
        model: ``large`` or ``small``: the architecture the weights are for.
        iterations: RAFT's flow updates (12 as torchvision's default; fewer is faster and coarser).
    """

    def __init__(self, weights: str, model: str = "large", iterations: int = 12) -> None:
        if model not in RAFT_MODELS:
            raise ConfigValueError(f"RAFTFlow: model must be one of {', '.join(RAFT_MODELS)}, not {model!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigValueError(f"RAFTFlow: iterations must be a whole number >= 1, not {iterations!r}")
        path = Path(weights)
        if not path.is_file():
            raise ConfigValueError(f"RAFTFlow: the weights file {weights!r} does not exist (RAFT weights are never "
                                   "downloaded: give the file)")
        self.weights = str(path)
        self.model = model
        self.iterations = iterations
        self._digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        self._net = None

    def identity(self) -> str:
        return f"RAFTFlow(model={self.model!r},iterations={self.iterations},weights_sha256={self._digest})"

    def network(self) -> torch.nn.Module:
        if self._net is None:
            from torchvision.models.optical_flow import raft_large, raft_small

            net = (raft_large if self.model == "large" else raft_small)(weights=None, progress=False)
            try:
                net.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
            except Exception as exc:  # noqa: BLE001 - any unreadable or mismatched file is the same one-line error
                reason = str(exc).strip().splitlines()[0][:200]
                raise ConfigValueError(f"RAFTFlow: {self.weights!r} is not a state dict of torchvision's raft_{self.model} "
                                       f"({type(exc).__name__}: {reason})") from None
            self._net = net.eval().requires_grad_(False)
        return self._net

    @torch.no_grad()
    def compute(self, first: Tensor, second: Tensor) -> Tensor:
        h, w = first.shape[-2:]
        # RAFT works at 1/8 of the size, with a correlation pyramid that needs 16 positions there: 128 px at least.
        pad = (0, max(RAFT_MIN_EDGE, w + -w % 8) - w, 0, max(RAFT_MIN_EDGE, h + -h % 8) - h)
        images = [torch.nn.functional.pad(f.float().div(127.5).sub(1).unsqueeze(0), pad, mode="replicate")
                  for f in (first, second)]
        flow = self.network()(*images, num_flow_updates=self.iterations)[-1]
        return flow[..., :h, :w].float().contiguous()
