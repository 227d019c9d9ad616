"""The data module of a video run: the clip's frames at the run's size, the style images, the clip's shots and
chunks (:mod:`nst_lightning.video.chunks`), and between neighbouring frames the optical flow and its reliability
(computed once, cached on disk).

The frames are driven by the ``VideoFrames`` callback, which takes the chunks from :attr:`VideoData.chunks` (run
``parallel`` at a time, as one batch of images), asks :meth:`VideoData.frame_sets` for frame t's inputs and
:meth:`VideoData.flow_to_previous` for the flow that brings frame t-1's output into frame t.
"""

from __future__ import annotations

from torch import Tensor

from nst_lightning.data import StyleTransferData
from nst_lightning.errors import ConfigValueError
from nst_lightning.image.image_set import ImageSet
from nst_lightning.image.io import check_image_file
from nst_lightning.video.chunks import Chunk, chunks_for_parallel, shot_cuts, split_clip
from nst_lightning.video.flow import DISFlow, FlowCache, OpticalFlow
from nst_lightning.video.io import Clip, check_clip, read_clip


class VideoData(StyleTransferData):
    """A clip and its style images.

    Args:
        video: a video file (any format FFmpeg reads), or a folder of frames taken in name order.
        style: one style image file, or a list of them.
        size: the long edge of the output frames, in pixels.
        style_scale, style_blend_weights, style_colour: as for a single image (``style_colour`` matches each
            frame's colours).
        flow: the optical flow method (default ``DISFlow``); a plugin may register others (``nst_register_flows``).
        flow_cache: the folder where flows are kept (default ``~/.cache/nst-lightning/flows``).
        max_frames: stylize only the first N frames (default: all).
        parallel: how many chunks are stylized side by side, as one batch of images (default 1: one after another).
        chunk_frames: split each shot into chunks of at most this many frames (default: with ``parallel`` 1, a
            shot is one chunk; else the length that gives ``parallel`` chunks over the clip).
        overlap: the frames neighbouring chunks share; their outputs are cross-faded there (``chunk_frames`` must be
            at least twice as many: no frame is in more than two chunks).
        cut_threshold: a new shot starts where the Bhattacharyya distance between neighbouring frames' colour
            histograms exceeds this (0 to 1); across a cut the next frame starts afresh. None: never.
    """

    def __init__(
        self,
        video: str,
        style: str | list[str],
        size: int = 256,
        style_scale: float = 1.0,
        style_blend_weights: list[float] | None = None,
        style_colour: str = "none",
        flow: OpticalFlow | None = None,
        flow_cache: str | None = None,
        max_frames: int | None = None,
        parallel: int = 1,
        chunk_frames: int | None = None,
        overlap: int = 4,
        cut_threshold: float | None = 0.5,
    ) -> None:
        super().__init__(video, style, size, style_scale, style_blend_weights, style_colour)
        if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
            raise ConfigValueError(f"data.max_frames must be a whole number >= 1, not {max_frames!r}")
        for name, value, least in (("parallel", parallel, 1), ("chunk_frames", chunk_frames, 2), ("overlap", overlap, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigValueError(f"data.{name} must be a whole number >= {least}, not {value!r}", key=f"data.{name}")
        if cut_threshold is not None and (isinstance(cut_threshold, bool) or not 0 < cut_threshold <= 1):
            raise ConfigValueError(f"data.cut_threshold must be a number in (0, 1] or null (never), not {cut_threshold!r}",
                                   key="data.cut_threshold")
        if chunk_frames is not None and chunk_frames < 2 * overlap:
            raise ConfigValueError(f"data.chunk_frames ({chunk_frames}) must be at least twice data.overlap ({overlap}): "
                                   "a frame is shared by two chunks at most", key="data.chunk_frames")
        self.video = video
        self.max_frames = max_frames
        self.parallel, self.chunk_frames, self.overlap, self.cut_threshold = parallel, chunk_frames, overlap, cut_threshold
        self._chunks: list[Chunk] | None = None
        self._cuts: list[int] | None = None
        self.flows = FlowCache(flow if flow is not None else DISFlow(), flow_cache)
        self.clip: Clip | None = None

    def check_inputs(self) -> None:
        check_clip(self.video)
        for path in self.style:
            check_image_file(path, "style image")

    def load_clip(self) -> Clip:
        """The clip's frames at ``size`` (decoded once)."""
        if self.clip is None:
            self.clip = read_clip(self.video, self.size, self.max_frames)
        return self.clip

    @property
    def frame_count(self) -> int:
        return len(self.load_clip().frames)

    def content_shape(self, long_edge: int) -> tuple[int, int]:
        h, w = self.load_clip().size
        scale = long_edge / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))

    @property
    def cuts(self) -> list[int]:
        """The frames that start a new shot (see :func:`~nst_lightning.video.chunks.shot_cuts`; computed once)."""
        if self._cuts is None:
            self._cuts = [] if self.cut_threshold is None else shot_cuts(self.load_clip().frames, self.cut_threshold)
        return self._cuts

    @property
    def chunks(self) -> list[Chunk]:
        """The clip's chunks, in order (computed once)."""
        if self._chunks is None:
            count, cuts = self.frame_count, self.cuts
            length = self.chunk_frames or chunks_for_parallel(count, self.parallel, self.overlap)
            self._chunks = split_clip(count, cuts, length, self.overlap)
        return self._chunks

    @property
    def images_per_step(self) -> int:
        """The images optimized together: ``parallel``, or fewer when the clip has fewer chunks."""
        return min(self.parallel, len(self.chunks))

    def frame_sets(self, index: int) -> list[ImageSet]:
        """Frame ``index``'s inputs: the frame as the content, the style images (recoloured to it by
        ``style_colour``)."""
        content = self.load_clip().frame(index)
        return [ImageSet(content, self.load_styles(self.size, content), list(self.style_weights), [])]

    def image_sets(self, size: int) -> list[ImageSet]:
        if size != self.size:
            raise ConfigValueError("a video runs at one size: MultiScale does not apply to data.video", key="data.size")
        return [s for chunk in self.chunks[: self.images_per_step] for s in self.frame_sets(chunk.frames[0])]

    def flow_to_previous(self, index: int) -> tuple[Tensor, Tensor]:
        """The flow from frame ``index`` to frame ``index - 1`` (1×2×H×W: where each pixel of this frame was) and
        where it is reliable (1×1×H×W, checked against the opposite flow)."""
        return self.flow_between(index, index - 1)

    def flow_between(self, index: int, earlier: int) -> tuple[Tensor, Tensor]:
        """The flow from frame ``index`` to frame ``earlier`` and where it is reliable (see :meth:`flow_to_previous`)."""
        clip = self.load_clip()
        return self.flows.between(clip.frames[index], clip.frames[earlier])
