"""How a clip is cut into pieces that can be stylized side by side: its shots, and chunks of a shot.

Single-pass video style transfer is sequential inside a shot (each frame starts from the previous output), so the
frames of a long clip run in parallel only as separate pieces:

- **Shots.** A new shot starts where a frame's colours differ from the previous frame's by more than a threshold
  (:func:`shot_cuts`: the Bhattacharyya distance between their colour histograms, OpenCV's ``compareHist``). Across
  a cut the flow means nothing: the next frame starts afresh, as the first frame does.
- **Chunks.** A shot longer than ``chunk_frames`` is split into chunks of that length that share ``overlap``
  frames with their neighbours (:func:`split_clip`). Each chunk is stylized on its own; in the frames two chunks
  share, the outputs are blended with weights that ramp linearly from one chunk to the other, so the seam is a
  cross-fade over the shared frames rather than a jump.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from nst_lightning.video.extra import require

HISTOGRAM_BINS = 16  # per channel (16³ colour bins)


@dataclass(frozen=True)
class Chunk:
    """Consecutive frames of one shot, stylized in order; ``weights[i]`` is the share of frame ``frames[i]``'s
    output that comes from this chunk (1 outside the overlaps; the shares of a frame's chunks add up to 1)."""

    frames: tuple[int, ...]
    weights: tuple[float, ...]


def colour_histogram(frame: Tensor) -> np.ndarray:
    """The normalized 16×16×16 RGB histogram of an 8-bit 3×H×W frame."""
    cv2 = require("cv2", "OpenCV (opencv-python-headless)")
    pixels = np.ascontiguousarray(frame.permute(1, 2, 0).numpy())
    histogram = cv2.calcHist([pixels], [0, 1, 2], None, [HISTOGRAM_BINS] * 3, [0, 256] * 3)
    return cv2.normalize(histogram, histogram, alpha=1, norm_type=cv2.NORM_L1)


def shot_cuts(frames: Sequence[Tensor], threshold: float) -> list[int]:
    """The frames that start a new shot (never frame 0): where the Bhattacharyya distance between a frame's colour
    histogram and the previous frame's exceeds ``threshold`` (0: identical colours, 1: no colour in common)."""
    cv2 = require("cv2", "OpenCV (opencv-python-headless)")
    cuts, previous = [], None
    for index, frame in enumerate(frames):
        histogram = colour_histogram(frame)
        if previous is not None and cv2.compareHist(previous, histogram, cv2.HISTCMP_BHATTACHARYYA) > threshold:
            cuts.append(index)
        previous = histogram
    return cuts


def split_clip(frame_count: int, cuts: Sequence[int], chunk_frames: int | None, overlap: int) -> list[Chunk]:
    """The clip's chunks in order: each shot (bounded by ``cuts``) whole, or, when it is longer than
    ``chunk_frames``, in chunks of at most that many frames, neighbours sharing ``overlap`` frames."""
    if chunk_frames is not None and chunk_frames < max(2 * overlap, 1):
        raise ValueError(f"chunks of {chunk_frames} frames cannot overlap by {overlap} on both sides")
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < frame_count), frame_count]
    chunks = []
    for start, end in zip(bounds, bounds[1:]):
        chunks.extend(split_shot(start, end, chunk_frames, overlap))
    return chunks


def split_shot(start: int, end: int, chunk_frames: int | None, overlap: int) -> list[Chunk]:
    """Frames ``start`` … ``end - 1`` (one shot) as chunks of ``chunk_frames`` (the last may be shorter), each
    starting ``chunk_frames - overlap`` frames after the one before: neighbours share ``overlap`` frames, and no
    frame is in more than two chunks."""
    length = end - start
    if chunk_frames is None or length <= chunk_frames:
        return [Chunk(tuple(range(start, end)), (1.0,) * length)]
    firsts = range(start, end - overlap, chunk_frames - overlap)  # each chunk has a frame the one before lacks
    spans = [range(first, min(first + chunk_frames, end)) for first in firsts]
    # Each chunk's say in a frame grows with the frame's distance from the chunk's ends (a tent), normalized over
    # the chunks that hold the frame: where two chunks share K frames, a linear cross-fade 1/(K+1) … K/(K+1).
    tents = [[min(i + 1, len(span) - i) for i in range(len(span))] for span in spans]
    totals = dict.fromkeys(range(start, end), 0)
    for span, tent in zip(spans, tents):
        for frame, say in zip(span, tent):
            totals[frame] += say
    return [Chunk(tuple(span), tuple(say / totals[frame] for frame, say in zip(span, tent)))
            for span, tent in zip(spans, tents)]


def chunks_for_parallel(frame_count: int, parallel: int, overlap: int) -> int | None:
    """The chunk length that gives about ``parallel`` chunks over the clip (None: one chunk per shot), and at least
    twice the overlap, so that no frame is shared by more than two chunks."""
    if parallel <= 1:
        return None
    return max(2 * overlap, 2, math.ceil((frame_count + (parallel - 1) * overlap) / parallel))
