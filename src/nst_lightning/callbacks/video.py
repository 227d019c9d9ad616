"""Video inside one ``fit``: ``VideoFrames`` optimizes the clip's frames one after another (and its chunks side by
side), and ``VideoWriter`` writes each finished frame (an H.264 file or a folder of PNGs).

The clip comes in chunks (``VideoData.chunks``: its shots, each whole or cut into overlapping chunks), and
``data.parallel`` chunks are optimized at once, as one batch of images, each image its own chunk: image ``b``'s
k-th frame is its chunk's k-th frame. Each frame of the batch gets its own span of optimizer steps
(``first_frame_steps`` for a chunk's first frame, ``steps_per_frame`` for the others), as ``MultiScale`` gives
each scale its own: at the span's first step the frames become the contents, the targets are computed again, the
optimizer's history is cleared, and each image starts from its chunk's previous output warped into this frame by
the optical flow (where the flow is unreliable, from the content frame). The ``TemporalLoss`` of the model, if it
has one, is given the same warped outputs and the flows' reliability as its references. At the span's last step
each frame's output is kept; a frame that two chunks share is cross-faded from their outputs
(``Chunk.weights``). A frame complete goes to the run's report (``finished_frames``), which the writer (after
every user callback: ``cli.fit.run_callbacks``) writes, and it is scored: its style and content distances, and
the warping error against its neighbours (:mod:`nst_lightning.quality.temporal`), apart for pairs at the chunks'
borders.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from nst_lightning.callbacks.convergence import StopWhenConverged, plateaued
from nst_lightning.callbacks.image_writer import ImageWriter, OutputExistsError
from nst_lightning.callbacks.multiscale import MultiScale, reset_optimizer_state
from nst_lightning.errors import ConfigError, ConfigValueError
from nst_lightning.files import check_name_lengths, check_writable_directory
from nst_lightning.image.io import load_image
from nst_lightning.model.losses.temporal import TemporalLoss
from nst_lightning.model.style_transfer import StyleTransfer, report_of
from nst_lightning.quality.temporal import VideoScores
from nst_lightning.video.chunks import Chunk
from nst_lightning.video.io import (
    PNG_FRAME,
    PngFolderSink,
    VideoFileSink,
    check_video_output,
    existing_frames,
    is_folder_output,
)
from nst_lightning.video.warp import closest_reliable, warp
from nst_lightning.video_data import VideoData


@dataclass(frozen=True)
class Entry:
    """What one image of the batch works on at one position of the schedule: in pass ``sweep`` (1, 2, …), chunk
    ``chunk``'s ``slot``-th frame, ``frame``, whose output counts for ``weight`` of that frame's."""

    chunk: int
    slot: int
    frame: int
    weight: float
    sweep: int = 1

    @property
    def backward(self) -> bool:
        """Whether this pass runs from the chunk's last frame to its first (passes 2, 4, …)."""
        return self.sweep % 2 == 0

    @property
    def neighbour(self) -> int:
        """The frame this pass came from: the previous frame, or in a backward pass the next one."""
        return self.frame + 1 if self.backward else self.frame - 1


def schedule(chunks: list[Chunk], images: int, passes: int = 1) -> list[list[Entry | None]]:
    """The run's positions in order: for each, the entry of each of the ``images`` images (None: idle, its chunk is
    done). Chunks go ``images`` at a time, in order; a group's k-th position holds each chunk's k-th frame. With
    ``passes`` > 1, a group goes over its chunks again, backward and forward in turn, before the next group."""
    positions: list[list[Entry | None]] = []
    for first in range(0, len(chunks), images):
        group = list(enumerate(chunks[first : first + images], start=first))
        longest = max(len(chunk.frames) for _, chunk in group)
        for sweep in range(1, passes + 1):
            slots = range(longest - 1, -1, -1) if sweep % 2 == 0 else range(longest)
            for slot in slots:
                row: list[Entry | None] = [Entry(c, slot, chunk.frames[slot], chunk.weights[slot], sweep)
                                           if slot < len(chunk.frames) else None for c, chunk in group]
                positions.append(row + [None] * (images - len(row)))
    return positions


def position_starts(positions: list[list[Entry | None]], first_frame_steps: int, steps_per_frame: int,
                    pass_steps: int | None = None) -> list[int]:
    """The optimizer step at which each position starts, and (last) the run's total steps: a position that starts
    a chunk takes ``first_frame_steps``, the others of the first pass ``steps_per_frame``, and those of the later
    passes ``pass_steps`` (default ``steps_per_frame``)."""
    starts = [0]
    for row in positions:
        entries = [entry for entry in row if entry is not None]
        if entries[0].sweep > 1:
            steps = pass_steps or steps_per_frame
        else:
            steps = first_frame_steps if any(entry.slot == 0 for entry in entries) else steps_per_frame
        starts.append(starts[-1] + steps)
    return starts


class VideoFrames(pl.Callback):
    """Stylize ``data.video`` frame after frame, ``data.parallel`` chunks at a time (see the module's docstring);
    sets ``trainer.max_steps`` to the clip's total.

    Args:
        steps_per_frame: optimizer steps for each frame after a chunk's first.
        first_frame_steps: optimizer steps for a chunk's first frame (default: ``steps_per_frame``); it starts from
            ``model.init``, the others from the previous output warped.
        warm_start: start each frame after the first from the previous output warped by the flow (else from
            ``model.init``, as a frame stylized alone).
        references: the earlier frames whose outputs the ``TemporalLoss`` holds each frame to, counted back from it:
            ``[1]`` (the default) the previous frame only; ``[1, 10, 20, 40]`` Ruder et al.'s long-term loss, each
            pixel held by the closest of them where the flow to it is reliable.
        tolerance: end a frame before its steps are spent once its loss has stopped falling: its best loss fell by
            less than this (relative) over the last ``window`` steps (the rule of ``StopWhenConverged``, per
            frame; with several images, once every one has); the next frames start earlier by the steps saved.
            None (the default): every frame takes its steps.
        window: the steps over which ``tolerance`` is judged.
        passes: Ruder et al.'s multi-pass: after the first pass, go over each chunk again, backward and forward in
            turn (``passes`` in all). A frame of a later pass starts from its own output of the pass before, blended
            where the flow is reliable with the output this pass just gave the frame it came from (warped), and
            the ``TemporalLoss`` holds it to that warped output. Only the last pass's outputs are written and
            scored. Default 1: a single pass.
        pass_steps: optimizer steps for each frame of a later pass (default: ``steps_per_frame``).
        blend: in a later pass, the share of the frame's own earlier output in its start (Ruder et al.'s δ), the
            rest from the neighbour's output warped.
    """

    def __init__(self, steps_per_frame: int = 100, first_frame_steps: int | None = None, warm_start: bool = True,
                 references: list[int] | None = None, tolerance: float | None = None, window: int = 20,
                 passes: int = 1, pass_steps: int | None = None, blend: float = 0.5) -> None:
        if tolerance is not None and not 0 <= tolerance < 1:
            raise ConfigValueError(f"VideoFrames: tolerance must be a number in [0, 1), not {tolerance!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigValueError(f"VideoFrames: window must be a whole number >= 1, not {window!r}")
        if not 0 <= blend <= 1:
            raise ConfigValueError(f"VideoFrames: blend must be a number in [0, 1], not {blend!r}")
        for name, value in (("steps_per_frame", steps_per_frame), ("first_frame_steps", first_frame_steps),
                            ("passes", passes), ("pass_steps", pass_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigValueError(f"VideoFrames: {name} must be a whole number >= 1, not {value!r}")
        references = [1] if references is None else list(references)
        if not references or any(isinstance(j, bool) or not isinstance(j, int) or j < 1 for j in references) \
                or len(set(references)) != len(references):
            raise ConfigValueError(f"VideoFrames: references must be distinct whole numbers >= 1 (frames back), "
                                   f"not {references!r}")
        self.steps_per_frame = steps_per_frame
        self.first_frame_steps = first_frame_steps or steps_per_frame
        self.warm_start = warm_start
        self.references = sorted(references)
        self.tolerance, self.window = tolerance, window
        self.passes, self.pass_steps, self.blend = passes, pass_steps, blend
        self.positions: list[list[Entry | None]] = []  # the schedule (see ``schedule``)
        self.starts: list[int] = []  # the step each position starts at, and the total
        self.shares: dict[int, int] = {}  # how many chunks each frame is in
        self.chunk_of: dict[int, tuple[int, ...]] = {}  # the chunks each frame is in
        self.frame_count = 0
        self.cuts: set[int] = set()  # the frames that start a shot
        self._reset()
        self._resumed: dict | None = None  # the state a checkpoint gave, until on_train_start uses it

    def _reset(self) -> None:
        self.history: list[list[float]] = []  # this position's losses, per step (with ``tolerance``)
        self.frame_steps: list[int] = []  # the steps each finished position took
        self.index = -1  # the position being optimized
        self.finished = -1  # the last position finished
        self.current: list[int] = []  # the frame each image works on (an idle image: its chunk's last)
        self.outputs: dict[tuple[int, int, int], Tensor] = {}  # (pass, chunk, frame): outputs later frames need
        self.pending: dict[int, tuple[float, Tensor, int]] = {}  # frame: a shared frame's blend so far
        self.emitted: dict[int, Tensor] = {}  # frames done whose neighbours are not yet (for the warping error)
        self.just_emitted: list[tuple[int, Tensor]] = []  # the frames the last position completed
        self.scores = VideoScores()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        data = trainer.datamodule
        if not isinstance(data, VideoData):
            raise ConfigError("VideoFrames drives the frames of a clip: give one with --data.video")
        for other in (MultiScale, StopWhenConverged):
            if any(isinstance(c, other) for c in trainer.callbacks):
                raise ConfigError(f"{other.__name__} does not apply to a video run (VideoFrames gives each frame its "
                                  "own steps); remove it from trainer.callbacks")
        images = data.images_per_step
        if pl_module.num_images != images:
            raise ConfigError(f"the model optimizes {pl_module.num_images} images at once, but data.parallel gives "
                              f"{images}: set the batch with model.set_sample_weights before fit (the CLI does)")
        self.positions = schedule(data.chunks, images, self.passes)
        self.starts = position_starts(self.positions, self.first_frame_steps, self.steps_per_frame, self.pass_steps)
        self.frame_count, self.cuts = data.frame_count, set(data.cuts)
        self.chunk_of = {}
        for c, chunk in enumerate(data.chunks):
            for frame in chunk.frames:
                self.chunk_of[frame] = (*self.chunk_of.get(frame, ()), c)
        self.shares = {frame: len(chunks) for frame, chunks in self.chunk_of.items()}
        trainer.fit_loop.epoch_loop.max_steps = self.starts[-1]

    def frame_at(self, step: int) -> int:
        """The position that optimizer step ``step`` belongs to."""
        return max(k for k, start in enumerate(self.starts[:-1]) if step >= start)

    def state_dict(self) -> dict:
        """What a resumed run needs: the positions finished, the outputs the next frames are held to, the shared
        frames' blends so far, the frames awaiting a neighbour's score, the scores."""
        cpu = lambda d: {k: v.cpu() for k, v in d.items()}  # noqa: E731
        return {"finished": self.finished, "outputs": cpu(self.outputs), "emitted": cpu(self.emitted),
                "pending": {f: (w, y.cpu(), n) for f, (w, y, n) in self.pending.items()},
                "just_emitted": [(f, y.cpu()) for f, y in self.just_emitted], "current": list(self.current),
                "scores": self.scores.state(), "starts": list(self.starts), "frame_steps": list(self.frame_steps)}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resumed = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()
        resumed, self._resumed = self._resumed, None
        if trainer.global_step == 0:
            self._enter(trainer, pl_module, 0)
            return
        if resumed is None or "emitted" not in resumed:
            raise ConfigError("the checkpoint holds no VideoFrames state of this version (the frames finished, the "
                              "earlier outputs): it was not made by a video run of this version", key="--ckpt_path")
        # A resumed run: the positions before the checkpoint's are done (their last frames may still be unwritten:
        # hand them to the writer again), and the checkpoint's goes on from the checkpoint's image and optimizer.
        device = pl_module.device
        self.finished, self.current = resumed["finished"], list(resumed["current"])
        self.outputs = {k: v.to(device) for k, v in resumed["outputs"].items()}
        self.emitted = {k: v.to(device) for k, v in resumed["emitted"].items()}
        self.pending = {f: (w, y.to(device), n) for f, (w, y, n) in resumed["pending"].items()}
        self.scores.load(resumed["scores"])
        self.starts, self.frame_steps = list(resumed["starts"]), list(resumed["frame_steps"])  # as frames ended early
        trainer.fit_loop.epoch_loop.max_steps = self.starts[-1]
        report_of(pl_module).finished_frames.extend((f, y.to(device)) for f, y in resumed["just_emitted"])
        index = self.frame_at(trainer.global_step)
        if index == self.finished + 1 and trainer.global_step > self.starts[index]:
            self._enter(trainer, pl_module, index, keep_image=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        index = self.frame_at(trainer.global_step)
        if index != self.index:
            self._enter(trainer, pl_module, index)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step < self.starts[self.index + 1] and self.tolerance is not None:
            losses = StopWhenConverged.image_losses(outputs)
            if losses is not None:
                self.history = [*self.history[-self.window:], losses.tolist()]  # one host read per step
                if all(plateaued(self.history, self.window, self.tolerance)):
                    self._end_frame_early(trainer, step)
        if step >= self.starts[self.index + 1]:
            self._finish(trainer, pl_module, step)

    def _end_frame_early(self, trainer: pl.Trainer, step: int) -> None:
        """The position is done at ``step``: the later ones start as many steps earlier, and the run ends sooner."""
        saved = self.starts[self.index + 1] - step
        self.starts = self.starts[: self.index + 1] + [start - saved for start in self.starts[self.index + 1:]]
        trainer.fit_loop.epoch_loop.max_steps = self.starts[-1]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.finished < self.index:
            self._finish(trainer, pl_module, trainer.global_step)
        report_of(pl_module).quality = [{**self.scores.summary(), "frame_steps": list(self.frame_steps)}]

    @torch.no_grad()
    def _enter(self, trainer: pl.Trainer, pl_module: StyleTransfer, index: int, keep_image: bool = False) -> None:
        """Make position ``index``'s frames the ones optimized; ``keep_image``: a resumed run keeps its image and
        optimizer state."""
        data: VideoData = trainer.datamodule
        row = self.positions[index]
        if not self.current:
            self.current = [entry.frame for entry in row if entry is not None]
        self.current = [entry.frame if entry is not None else frame for entry, frame in zip(row, self.current)]
        pl_module.set_image_sets([s for frame in self.current for s in data.frame_sets(frame)])
        content = pl_module.content_image
        image = pl_module.image.detach().clone() if pl_module.image is not None else content.clone()
        fresh = pl_module.initial_image()
        references = {j: torch.zeros_like(content) for j in {1, *self.references}}
        masks = {j: torch.zeros_like(content[:, :1]) for j in {1, *self.references}}
        held = set()  # the references some image has
        for b, entry in enumerate(row):
            if entry is None:
                continue  # idle: its chunk is done; it keeps its image, held to nothing
            if entry.sweep > 1:  # a later pass: from its own output, blended with the neighbour's of this pass
                image[b], references[1][b], masks[1][b] = self._later_pass_start(data, entry, pl_module.device)
                held.add(1)
                continue
            previous = self.outputs.get((1, entry.chunk, entry.frame - 1)) if entry.slot > 0 else None
            if previous is None:
                image[b] = fresh[b]
                continue
            flow, reliable = (t.to(pl_module.device) for t in data.flow_to_previous(entry.frame))
            warped = warp(previous, flow)
            image[b] = (reliable * warped + (1 - reliable) * content[b : b + 1])[0] if self.warm_start else fresh[b]
            for j in self.references:
                earlier = self.outputs.get((1, entry.chunk, entry.frame - j)) if entry.slot >= j else None
                if earlier is None:
                    continue
                flow_j, reliable_j = (t.to(pl_module.device) for t in data.flow_between(entry.frame, entry.frame - j))
                references[j][b] = warp(earlier, flow_j)[0]
                masks[j][b] = reliable_j[0]
                held.add(j)
        order = [j for j in sorted(references) if j in held]
        for term in (t for t in pl_module.losses.values() if isinstance(t, TemporalLoss)):
            term.set_reference([references[j] for j in order] or None,
                               closest_reliable([masks[j] for j in order]) if order else None)
        if not keep_image:
            pl_module.image.data = image.clamp(0, 1).contiguous()
            pl_module.image.grad = None
        pl_module.compute_targets()
        if not keep_image:
            for optimizer in trainer.optimizers:
                reset_optimizer_state(optimizer)
        self.index = index
        frames = [entry.frame + 1 for entry in row if entry is not None]
        which = f"Frame {frames[0]}" if len(frames) == 1 else f"Frames {', '.join(map(str, frames))}"
        sweep = next(entry.sweep for entry in row if entry is not None)
        of_pass = f" (pass {sweep}/{self.passes})" if self.passes > 1 else ""
        rank_zero_info(f"{which} of {self.frame_count}{of_pass} from step {trainer.global_step}")

    def _later_pass_start(self, data: VideoData, entry: Entry, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """A later pass's frame: its start (its own output of the pass before, blended where the flow is reliable
        with the neighbour's output of this pass, warped), and the temporal reference and mask (none at the end the
        pass starts from)."""
        own = self.outputs[(entry.sweep - 1, entry.chunk, entry.frame)]
        neighbour = self.outputs.get((entry.sweep, entry.chunk, entry.neighbour))
        if neighbour is None:
            return own[0], torch.zeros_like(own[0]), torch.zeros_like(own[0, :1])
        flow, reliable = (t.to(device) for t in data.flow_between(entry.frame, entry.neighbour))
        warped = warp(neighbour, flow)
        start = reliable * (self.blend * own + (1 - self.blend) * warped) + (1 - reliable) * own
        return start[0], warped[0], reliable[0]

    @torch.no_grad()
    def _finish(self, trainer: pl.Trainer, pl_module: StyleTransfer, step: int) -> None:
        """Position ``self.index`` is done: keep each image's output, and complete the frames it finishes."""
        output = pl_module.output_image().detach().clone()
        row = self.positions[self.index]
        self.just_emitted = []
        for b, entry in enumerate(row):
            if entry is not None:
                self.outputs[(entry.sweep, entry.chunk, entry.frame)] = output[b : b + 1]
                if entry.sweep == self.passes:
                    self._contribute(trainer.datamodule, pl_module, entry.frame, entry.weight, output[b : b + 1])
        # Memory does not grow with the clip in a single pass: only the outputs the next frames can be held to are
        # kept. With several passes, the chunks in flight keep this pass's outputs and the one before.
        reach = self.references[-1]
        live = [entry for entry in row if entry is not None]
        if self.passes == 1:
            self.outputs = {(p, c, f): y for (p, c, f), y in self.outputs.items()
                            if any(c == e.chunk and e.frame - reach < f for e in live)}
        else:
            self.outputs = {(p, c, f): y for (p, c, f), y in self.outputs.items()
                            if any(c == e.chunk and e.sweep - 1 <= p for e in live)}
        self.frame_steps.append(step - self.starts[self.index])
        self.history = []
        self.finished = self.index

    def _contribute(self, data: VideoData, pl_module: StyleTransfer, frame: int, weight: float, output: Tensor) -> None:
        """One chunk's output of ``frame``; the frame is complete once every chunk it is in has given its own."""
        total, blend, count = self.pending.pop(frame, (0.0, torch.zeros_like(output), 0))
        total, blend, count = total + weight, blend + weight * output, count + 1
        if count < self.shares[frame]:
            self.pending[frame] = (total, blend, count)
            return
        self._emit(data, pl_module, frame, (blend / total).clamp(0, 1))

    def _emit(self, data: VideoData, pl_module: StyleTransfer, frame: int, output: Tensor) -> None:
        """Frame ``frame`` is complete: to the writer, scored, and paired with its finished neighbours."""
        image_set = data.frame_sets(frame)[0]
        device = output.device
        self.scores.add_frame(output, image_set.content.to(device), [s.to(device) for s in image_set.styles],
                              image_set.style_weights)
        report_of(pl_module).finished_frames.append((frame, output))
        self.just_emitted.append((frame, output))
        self.emitted[frame] = output
        for later in (frame, frame + 1):  # the pairs (later - 1, later) this frame completes
            if later - 1 in self.emitted and later in self.emitted and self._same_shot(later - 1, later):
                flow, reliable = data.flow_to_previous(later)
                border = self.chunk_of[later - 1] != self.chunk_of[later] or self.shares[later] > 1
                self.scores.add_pair(self.emitted[later - 1], self.emitted[later], flow, reliable, border=border)
        self.emitted = {f: y for f, y in self.emitted.items() if not self._paired(f)}

    def _same_shot(self, earlier: int, later: int) -> bool:
        """Whether neighbouring frames are in one shot (no cut between them)."""
        return later not in self.cuts

    def _paired(self, frame: int) -> bool:
        """Whether ``frame``'s neighbours in its shot are done (its warping-error pairs are counted)."""
        before = frame == 0 or not self._same_shot(frame - 1, frame) or frame - 1 in self.emitted
        after = frame == self.frame_count - 1 or not self._same_shot(frame, frame + 1) or frame + 1 in self.emitted
        return before and after


class VideoWriter(ImageWriter):
    """Writes the frames ``VideoFrames`` finishes: to a video file (``--output`` ending in .mp4, .mov or .mkv; H.264
    at the clip's frame rate, its audio copied) or, when ``--output`` ends with ``/``, to ``frame_00000.png``, ...
    in that folder. A video's frames are kept as PNGs in the run's folder (``<stem>.run/frames/``) until the last
    one is done, then encoded under a temporary name that becomes ``--output`` when complete (and the PNGs are
    removed): an interrupted run leaves its frames for ``--ckpt_path``, never a half-written video. Nothing is
    replaced without ``--overwrite true``.
    """

    def __init__(self, output: str, overwrite: bool = False, **kwargs) -> None:
        self.folder = is_folder_output(output)
        self.raw_output = output
        super().__init__(output, overwrite, **kwargs)
        self.frames = self.output if self.folder else self.files.folder / "frames"
        self.sink: PngFolderSink | None = None

    def check_output(self, logging: bool = True) -> None:
        """Refuse the run now if it would replace a video or frames without ``--overwrite``, or another run is
        writing them; a resumed run goes on with its own frames."""
        check_video_output(self.raw_output)
        name = f"--output {self.raw_output!r}"
        if self.folder and self.output.exists() and not self.output.is_dir():
            raise OutputExistsError(f"{name} is a file, not a folder")
        if not self.folder and self.output.is_dir():
            raise OutputExistsError(f"{name} is a directory")
        if not self.folder and self.output.exists() and not self.overwrite:
            raise OutputExistsError(f"{name} exists; pass --overwrite true to replace it")
        frames = existing_frames(self.frames)
        if frames and not self.overwrite and not self.files.resumes(self.ckpt_path):
            where = name if self.folder else f"{name}: its run folder {str(self.frames)!r}"
            hint = f", or go on with --ckpt_path {str(self.files.interrupted_checkpoint)!r}" \
                if self.files.interrupted_checkpoint.is_file() else ""
            raise OutputExistsError(f"{where} holds {len(frames)} frames of an earlier run (the first "
                                    f"{frames[0].name}); pass --overwrite true to replace them{hint}")
        found = [] if self.overwrite else self.files.in_the_way(self.ckpt_path, logging)  # a log, a checkpoint
        if found:
            raise OutputExistsError(f"{name}: its run folder holds an earlier run's files, the first {str(found[0])!r}; "
                                    "pass --overwrite true to replace them, or choose another --output")
        check_name_lengths(self.output)
        check_writable_directory(self.output if self.folder else self.output.parent)
        self.claim.check()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not isinstance(trainer.datamodule, VideoData):
            raise ConfigError("a video --output needs a clip: give one with --data.video")
        # Checked before the run: the folder is new, this run's own (a resume), or --overwrite replaces it.
        self.sink = PngFolderSink(self.frames, replace=True, bit_depth=self.bit_depth if self.folder else 8)

    def _write_finished(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report = report_of(pl_module)
        while report.finished_frames and self.sink is not None and trainer.is_global_zero:
            index, image = report.finished_frames.pop(0)
            self.sink.write(image, index, self.metadata(trainer, pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._write_finished(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_finished(trainer, pl_module)
        if self.sink is None or not trainer.is_global_zero:
            return
        self.sink = None
        if self.folder:
            self.written = self.output
            return
        data: VideoData = trainer.datamodule
        clip = data.load_clip()
        audio = clip.source if clip.has_audio and data.max_frames is None else None
        self.written = encode_frames(self.frames, len(clip.frames), self.output, clip.fps, self.overwrite, audio,
                                     clip.source_size)
        shutil.rmtree(self.frames, ignore_errors=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.sink = None  # the frames written stay for a resume
        self.release()


def encode_frames(folder: Path, count: int, output: Path, fps, replace: bool, audio: Path | None,
                  size: tuple[int, int] | None = None) -> Path:
    """``frame_00000.png`` … of ``folder`` as one H.264 video (:class:`VideoFileSink`) at ``size`` (the source's; None:
    the frames'): complete or nothing."""
    sink = VideoFileSink(output, fps, replace=replace, audio_from=audio, size=size)
    try:
        for index in range(count):
            sink.write(load_image(folder / PNG_FRAME.format(index), None, "video frame"))
        return sink.close()
    except BaseException:
        sink.abort()
        raise
