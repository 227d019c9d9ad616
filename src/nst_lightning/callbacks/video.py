"""Video inside one ``fit``: ``VideoFrames`` optimizes the clip's frames one after another, and ``VideoWriter``
writes each finished frame (an H.264 file or a folder of PNGs).

Each frame gets its own span of optimizer steps (``first_frame_steps`` for the first, ``steps_per_frame`` for the
others), as ``MultiScale`` gives each scale its own: at the span's first step the frame becomes the content, the
targets are computed again, the optimizer's history is cleared, and the image starts from the previous frame's
output warped into this frame by the optical flow (where the flow is unreliable, from the content frame). The
``TemporalLoss`` of the model, if it has one, is given the same warped output and the flow's reliability as its
reference. At the span's last step the frame's output goes to the run's report (``finished_frames``), which the
writer (after every user callback: ``cli.fit.run_callbacks``) writes, and it is scored: its style and content
distances, and the warping error against the previous output (:mod:`nst_lightning.quality.temporal`).
"""

from __future__ import annotations

import shutil
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


def frame_starts(frames: int, first_frame_steps: int, steps_per_frame: int) -> list[int]:
    """The optimizer step at which each frame starts, and (last) the run's total steps."""
    return [0, *(first_frame_steps + k * steps_per_frame for k in range(frames))]


class VideoFrames(pl.Callback):
    """Stylize ``data.video`` frame after frame (see the module's docstring); sets ``trainer.max_steps`` to the
    clip's total.

    Args:
        steps_per_frame: optimizer steps for each frame after the first.
        first_frame_steps: optimizer steps for the first frame (default: ``steps_per_frame``); it starts from
            ``model.init``, the others from the previous output warped.
        warm_start: start each frame after the first from the previous output warped by the flow (else from
            ``model.init``, as a frame stylized alone).
        references: the earlier frames whose outputs the ``TemporalLoss`` holds each frame to, counted back from it:
            ``[1]`` (the default) the previous frame only; ``[1, 10, 20, 40]`` Ruder et al.'s long-term loss, each
            pixel held by the closest of them where the flow to it is reliable.
        tolerance: end a frame before its steps are spent once its loss has stopped falling: its best loss fell by
            less than this (relative) over the last ``window`` steps (the rule of ``StopWhenConverged``, per
            frame); the next frames start earlier by the steps saved. None (the default): every frame takes its
            steps.
        window: the steps over which ``tolerance`` is judged.
    """

    def __init__(self, steps_per_frame: int = 100, first_frame_steps: int | None = None, warm_start: bool = True,
                 references: list[int] | None = None, tolerance: float | None = None, window: int = 20) -> None:
        if tolerance is not None and not 0 <= tolerance < 1:
            raise ConfigValueError(f"VideoFrames: tolerance must be a number in [0, 1), not {tolerance!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigValueError(f"VideoFrames: window must be a whole number >= 1, not {window!r}")
        for name, value in (("steps_per_frame", steps_per_frame), ("first_frame_steps", first_frame_steps)):
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
        self.history: list[list[float]] = []  # this frame's losses, per step (with ``tolerance``)
        self.frame_steps: list[int] = []  # the steps each finished frame took
        self.starts: list[int] = []
        self.index = -1
        self.finished = -1
        self.outputs: dict[int, Tensor] = {}  # the outputs of the last max(references) frames, by index
        self.previous: Tensor | None = None  # the previous frame's output
        self.flow: tuple[Tensor, Tensor] | None = None  # the current frame's flow to the previous one, its reliability
        self.scores = VideoScores()
        self._resumed: dict | None = None  # the state a checkpoint gave, until on_train_start uses it

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        data = trainer.datamodule
        if not isinstance(data, VideoData):
            raise ConfigError("VideoFrames drives the frames of a clip: give one with --data.video")
        for other in (MultiScale, StopWhenConverged):
            if any(isinstance(c, other) for c in trainer.callbacks):
                raise ConfigError(f"{other.__name__} does not apply to a video run (VideoFrames gives each frame its "
                                  "own steps); remove it from trainer.callbacks")
        self.starts = frame_starts(data.frame_count, self.first_frame_steps, self.steps_per_frame)
        trainer.fit_loop.epoch_loop.max_steps = self.starts[-1]

    def frame_at(self, step: int) -> int:
        return max(k for k, start in enumerate(self.starts[:-1]) if step >= start)

    def state_dict(self) -> dict:
        """What a resumed run needs: the frames finished, the outputs the next frames are held to, the scores."""
        return {"finished": self.finished, "outputs": {k: v.cpu() for k, v in self.outputs.items()},
                "scores": self.scores.state(), "starts": list(self.starts), "frame_steps": list(self.frame_steps)}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resumed = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.index, self.finished, self.previous, self.outputs, self.scores = -1, -1, None, {}, VideoScores()
        self.history, self.frame_steps = [], []
        resumed, self._resumed = self._resumed, None
        if trainer.global_step == 0:
            self._enter(trainer, pl_module, 0)
            return
        if resumed is None:
            raise ConfigError("the checkpoint holds no VideoFrames state (the frames finished, the earlier outputs): "
                              "it was not made by a video run", key="--ckpt_path")
        # A resumed run: the frames before the checkpoint's are done (the last one may still be unwritten: hand it
        # to the writer again), and the checkpoint's frame goes on from the checkpoint's image and optimizer state.
        self.finished = resumed["finished"]
        self.outputs = {k: v.to(pl_module.device) for k, v in resumed["outputs"].items()}
        self.previous = self.outputs.get(self.finished)
        self.scores.load(resumed["scores"])
        self.starts, self.frame_steps = list(resumed["starts"]), list(resumed["frame_steps"])  # as frames ended early
        trainer.fit_loop.epoch_loop.max_steps = self.starts[-1]
        if self.previous is not None:
            report_of(pl_module).finished_frames.append((self.finished, self.previous))
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
            self._finish(pl_module, step)

    def _end_frame_early(self, trainer: pl.Trainer, step: int) -> None:
        """The frame is done at ``step``: the later frames start as many steps earlier, and the run ends sooner."""
        saved = self.starts[self.index + 1] - step
        self.starts = self.starts[: self.index + 1] + [start - saved for start in self.starts[self.index + 1:]]
        trainer.fit_loop.epoch_loop.max_steps = self.starts[-1]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.finished < self.index:
            self._finish(pl_module, trainer.global_step)
        report_of(pl_module).quality = [{**self.scores.summary(), "frame_steps": list(self.frame_steps)}]

    @torch.no_grad()
    def _enter(self, trainer: pl.Trainer, pl_module: StyleTransfer, index: int, keep_image: bool = False) -> None:
        """Make frame ``index`` the one optimized; ``keep_image``: a resumed run keeps its image and optimizer."""
        data: VideoData = trainer.datamodule
        pl_module.set_image_sets(data.frame_sets(index))
        temporal = [term for term in pl_module.losses.values() if isinstance(term, TemporalLoss)]
        if index == 0 or self.previous is None:
            self.flow = None
            image = pl_module.initial_image()
            for term in temporal:
                term.set_reference(None)
        else:
            flow, reliable = (t.to(pl_module.device) for t in data.flow_to_previous(index))
            self.flow = (flow, reliable)
            warped = warp(self.previous, flow)
            if temporal:
                references, masks = [], []
                for j in (j for j in self.references if index - j in self.outputs):
                    flow_j, reliable_j = (t.to(pl_module.device) for t in data.flow_between(index, index - j))
                    references.append(warp(self.outputs[index - j], flow_j))
                    masks.append(reliable_j)
                for term in temporal:
                    term.set_reference(references or None, closest_reliable(masks) if masks else None)
            content = pl_module.content_image
            image = reliable * warped + (1 - reliable) * content if self.warm_start else pl_module.initial_image()
        if not keep_image:
            pl_module.image.data = image.clamp(0, 1).contiguous()
            pl_module.image.grad = None
        pl_module.compute_targets()
        if not keep_image:
            for optimizer in trainer.optimizers:
                reset_optimizer_state(optimizer)
        self.index = index
        rank_zero_info(f"Frame {index + 1}/{len(self.starts) - 1} from step {trainer.global_step}")

    @torch.no_grad()
    def _finish(self, pl_module: StyleTransfer, step: int) -> None:
        output = pl_module.output_image().detach().clone()
        image_set = pl_module.image_sets[0]
        self.scores.add_frame(output, image_set.content, image_set.styles, image_set.style_weights)
        if self.previous is not None and self.flow is not None:
            self.scores.add_pair(self.previous, output, *self.flow)
        report_of(pl_module).finished_frames.append((self.index, output))
        self.previous = output
        self.frame_steps.append(step - self.starts[self.index])
        self.history = []
        self.outputs[self.index] = output
        for gone in [k for k in self.outputs if k <= self.index - self.references[-1]]:
            del self.outputs[gone]  # memory does not grow with the clip
        self.finished = self.index


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
        self.written = encode_frames(self.frames, len(clip.frames), self.output, clip.fps, self.overwrite, audio)
        shutil.rmtree(self.frames, ignore_errors=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.sink = None  # the frames written stay for a resume
        self.release()


def encode_frames(folder: Path, count: int, output: Path, fps, replace: bool, audio: Path | None) -> Path:
    """``frame_00000.png`` … of ``folder`` as one H.264 video (:class:`VideoFileSink`): complete or nothing."""
    sink = VideoFileSink(output, fps, replace=replace, audio_from=audio)
    try:
        for index in range(count):
            sink.write(load_image(folder / PNG_FRAME.format(index), None, "video frame"))
        return sink.close()
    except BaseException:
        sink.abort()
        raise
