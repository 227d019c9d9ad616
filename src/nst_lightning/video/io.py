"""Reading a clip (a video file through PyAV, or a folder of frames in name order) and writing the stylized one
(H.264 through PyAV at the source's frame rate, the audio copied; or one PNG per frame).

Frames are kept as 8-bit 3×H×W tensors at the run's size: a clip of 24 frames at 512×384 is 14 MB.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from nst_lightning.errors import NstLightningError
from nst_lightning.files import atomic_path
from nst_lightning.image.io import open_rgb, resize_long_edge, save_png, to_pil
from nst_lightning.video.extra import require

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = Fraction(24)  # a folder of frames has no rate of its own
# Container formats by the output's suffix (the file is written under a temporary name first).
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
PNG_FRAME = "frame_{:05d}.png"


class VideoError(NstLightningError):
    """A clip that cannot be read or written."""


@dataclass
class Clip:
    """A clip's frames at the run's size (8-bit, 3×H×W each), its frame rate, and the source file (for its audio)."""

    frames: list[Tensor]
    fps: Fraction
    source: Path
    has_audio: bool = False
    size: tuple[int, int] = field(init=False)  # (height, width)
    source_size: tuple[int, int] | None = None  # (height, width) of the source's frames, before resizing

    def __post_init__(self) -> None:
        self.size = tuple(self.frames[0].shape[-2:]) if self.frames else (0, 0)

    def frame(self, index: int) -> Tensor:
        """Frame ``index`` as a 1×3×H×W float tensor in [0, 1]."""
        return self.frames[index].float().div(255).unsqueeze(0)


def _source_size(image: Image.Image) -> tuple[int, int]:
    return image.height, image.width


def _at_size(image: Image.Image, long_edge: int | None) -> Tensor:
    if long_edge is not None:
        image = resize_long_edge(image, long_edge)
    return pil_to_tensor(image.convert("RGB")).contiguous()


def _same_size(frames: list[Tensor], index: int, what: str) -> None:
    if frames[index].shape != frames[0].shape:
        h0, w0 = frames[0].shape[-2:]
        h, w = frames[index].shape[-2:]
        raise VideoError(f"{what}: frame {index} is {w}x{h} px but frame 0 is {w0}x{h0} px; every frame must have one size")


def frame_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)


def check_clip(path: str | os.PathLike) -> Path:
    """The clip ``path`` names, if it exists and is a non-empty file or a folder with frames (nothing decoded)."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"video {str(p)!r} does not exist")
    if p.is_dir():
        if not frame_files(p):
            raise VideoError(f"video {str(p)!r} is a folder without frames ({', '.join(FRAME_SUFFIXES)})")
        return p
    if not p.is_file():
        raise VideoError(f"video {str(p)!r} is not a regular file or a folder of frames")
    if p.stat().st_size == 0:
        raise VideoError(f"video {str(p)!r} is an empty file")
    return p


def read_clip(path: str | os.PathLike, long_edge: int | None = None, max_frames: int | None = None) -> Clip:
    """The frames of a video file (decoded with PyAV) or of a folder of images (name order), resized so that their
    long edge is ``long_edge``; at most ``max_frames``. Errors name the file."""
    p = check_clip(path)
    if p.is_dir():
        files = frame_files(p)[:max_frames]
        images = [open_rgb(f, "video frame") for f in files]
        frames = [_at_size(image, long_edge) for image in images]
        for i in range(len(frames)):
            _same_size(frames, i, f"video {str(p)!r}")
        return Clip(frames, DEFAULT_FPS, p, source_size=_source_size(images[0]) if images else None)
    av = require("av", "PyAV (av)")
    frames: list[Tensor] = []
    source_size = None
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"video {str(p)!r} has no video stream")
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            has_audio = bool(container.streams.audio)
            for decoded in container.decode(stream):
                image = decoded.to_image()
                source_size = source_size or _source_size(image)
                frames.append(_at_size(image, long_edge))
                _same_size(frames, len(frames) - 1, f"video {str(p)!r}")
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as exc:
        raise VideoError(f"video {str(p)!r} cannot be read ({exc})") from None
    if not frames:
        raise VideoError(f"video {str(p)!r} has no frames")
    return Clip(frames, fps, p, has_audio, source_size)


def is_clip(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a clip, not an image: a folder (of frames) or a file with a video suffix."""
    return Path(path).is_dir() or Path(path).suffix.lower() in CONTAINERS


def is_folder_output(output: str | os.PathLike) -> bool:
    """Whether ``--output`` names a folder of PNG frames (it ends with ``/``) rather than a video file."""
    return os.fspath(output).endswith(("/", os.sep))


def check_video_output(output: str | os.PathLike) -> None:
    """A video output's suffix names a container this writer knows."""
    if not is_folder_output(output) and Path(output).suffix.lower() not in CONTAINERS:
        raise VideoError(f"--output {os.fspath(output)!r} must end in {', '.join(CONTAINERS)}, or with / for a "
                         "folder of PNG frames")


def existing_frames(folder: Path) -> list[Path]:
    """The PNG frames an earlier run left in ``folder`` (``frame_00000.png``, ...)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("frame_*.png"))


class PngFolderSink:
    """``frame_00000.png``, ``frame_00001.png``, ... in ``folder``, each written atomically; an existing frame is
    replaced only with ``replace``."""

    def __init__(self, folder: Path, replace: bool = False, bit_depth: int = 8) -> None:
        self.folder = folder
        self.replace = replace
        self.bit_depth = bit_depth

    def write(self, image: Tensor, index: int, metadata: dict[str, str] | None = None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return save_png(image, self.folder / PNG_FRAME.format(index), metadata, self.bit_depth, replace=self.replace)


class VideoFileSink:
    """An H.264 (libx264, CRF ``crf``, yuv420p) video at ``fps``, written under a temporary name and renamed when
    closed (never replacing a file without ``replace``); the source's audio is copied when it has any. With
    ``size`` (height, width), each frame is resized to it (Lanczos) before it is encoded."""

    def __init__(self, path: Path, fps: Fraction, replace: bool = False, audio_from: Path | None = None,
                 crf: int = 18, size: tuple[int, int] | None = None) -> None:
        self.av = require("av", "PyAV (av)")
        self.path = path
        self.fps = fps
        self.replace = replace
        self.audio_from = audio_from
        self.crf = crf
        self.size = size
        self._files = ExitStack()
        self._container = None
        self._stream = None
        self._audio = None  # (source container, its audio stream, the output's audio stream)

    def _open(self, height: int, width: int) -> None:
        tmp = self._files.enter_context(atomic_path(self.path, replace=self.replace))
        self._container = self.av.open(str(tmp), mode="w", format=CONTAINERS[self.path.suffix.lower()])
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf)}
        if self.audio_from is not None:
            source = self.av.open(str(self.audio_from))
            if source.streams.audio:
                audio_in = source.streams.audio[0]
                self._audio = (source, audio_in, self._container.add_stream_from_template(audio_in))
            else:
                source.close()

    def write(self, image: Tensor) -> None:
        picture = to_pil(image)
        if self.size is not None and (picture.height, picture.width) != tuple(self.size):
            picture = picture.resize((self.size[1], self.size[0]), Image.Resampling.LANCZOS)
        picture = picture.crop((0, 0, picture.width - picture.width % 2, picture.height - picture.height % 2))
        if self._container is None:
            self._open(picture.height, picture.width)
        frame = self.av.VideoFrame.from_image(picture)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _copy_audio(self) -> None:
        source, audio_in, audio_out = self._audio
        for packet in source.demux(audio_in):
            if packet.dts is None:
                continue
            packet.stream = audio_out
            self._container.mux(packet)
        source.close()

    def close(self) -> Path:
        if self._container is None:
            raise VideoError(f"no frames to write to {str(self.path)!r}")
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._audio is not None:
            self._copy_audio()
        self._container.close()
        self._files.close()  # the temporary file becomes the output
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the temporary file is removed in any case
                pass
        if self._audio is not None:
            self._audio[0].close()
        self._files.__exit__(RuntimeError, RuntimeError("aborted"), None)  # removes the temporary file


def count_frames(path: str | os.PathLike) -> tuple[int, Fraction, tuple[int, int]]:
    """(frames, frame rate, (height, width)) of a video file: what a written clip is checked against."""
    clip = read_clip(path)
    return len(clip.frames), clip.fps, clip.size


def as_uint8(image: Tensor) -> Tensor:
    """A 1×3×H×W image in [0, 1] as an 8-bit 3×H×W tensor (how frames are kept)."""
    return image[0].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
