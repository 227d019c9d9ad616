"""A clip in pieces: shot cuts, chunks that overlap and are cross-faded, and chunks optimized side by side as one
batch of images, which must give the frames that stylizing each chunk on its own gives."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_lightning.callbacks.interrupt import InterruptSaver
from nst_lightning.callbacks.video import position_starts, schedule
from nst_lightning.cli import main
from nst_lightning.video.chunks import shot_cuts, split_clip

from .conftest import CONTENT, STYLE, TINY
from .helpers import expect_one_line_error

cv2 = pytest.importorskip("cv2")

HEIGHT, WIDTH = 48, 64


def crops(photo_path: Path, frames: int, shift: int = 2) -> list[np.ndarray]:
    """A pan over a photograph: frame t is a 48×64 crop ``shift·t`` px further right."""
    photo = np.asarray(Image.open(photo_path).convert("RGB").resize((160, 120), Image.Resampling.LANCZOS))
    return [np.ascontiguousarray(photo[20 : 20 + HEIGHT, 8 + shift * t : 8 + shift * t + WIDTH]) for t in range(frames)]


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:03d}.png")
    return folder


def run(tmp_path: Path, video: Path, output: Path, *extra: str, first: int = 1, per_frame: int = 1) -> list:
    """Stylizes ``video`` into 16-bit PNGs in ``output`` and returns them in order.

    One step per frame by default: L-BFGS without a line search amplifies float32 rounding, so a batch, which sums
    its convolutions in another order than one image does, drifts from the same run alone once curvature pairs
    come in (measured at 64 px: 2e-7 after a frame's first step, 3e-4 after its second, 2e-2 a frame later)."""
    main(["fit", "--config", "video", "--config", str(TINY), "--data.video", str(video), "--data.size", str(WIDTH),
          "--data.style", str(STYLE), "--data.flow_cache", str(tmp_path / "flows"), "--output_bit_depth", "16",
          "--trainer.callbacks.init_args.first_frame_steps", str(first),
          "--trainer.callbacks.init_args.steps_per_frame", str(per_frame),
          "--trainer.default_root_dir", str(tmp_path), "--output", f"{output}/", *extra])
    return [read_png16(p) for p in sorted(output.glob("frame_*.png"))]


def read_png16(path: Path):
    """A 16-bit PNG as a float 1×3×H×W tensor in [0, 1] (Pillow reads 16-bit RGB as 8-bit; OpenCV does not)."""
    from torch import from_numpy

    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint16
    return from_numpy(bgr[..., ::-1].astype(np.float32) / 65535).permute(2, 0, 1).unsqueeze(0)


@pytest.fixture
def progress_lines():
    """The lines ``VideoFrames`` logs (``rank_zero_info``), caught on their own logger: pytest's ``caplog`` sees
    them only while Lightning's logger propagates, which depends on the tests run before."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def largest_difference(a, b) -> float:
    return float((a - b).abs().max())


# -- the split ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "cuts", "length", "overlap"), [(24, [], 10, 3), (25, [9], 6, 2), (7, [], 7, 2),
                                                                   (30, [4, 5, 17], 8, 0), (11, [], 4, 2)])
def test_chunks_cover_every_frame_once_in_blend_weight_and_never_cross_a_cut(frames, cuts, length, overlap):
    chunks = split_clip(frames, cuts, length, overlap)
    share = np.zeros(frames)
    for chunk in chunks:
        assert len(chunk.frames) <= length and list(chunk.frames) == list(range(chunk.frames[0], chunk.frames[-1] + 1))
        assert not any(cut in chunk.frames[1:] for cut in cuts)  # a cut only ever starts a chunk
        for frame, weight in zip(chunk.frames, chunk.weights):
            assert 0 < weight <= 1
            share[frame] += weight
    assert np.allclose(share, 1)  # each frame's output is a weighted mean of its chunks' outputs
    held = [sum(frame in chunk.frames for chunk in chunks) for frame in range(frames)]
    assert max(held) <= 2  # never a blend of three independent stylizations
    for a, b in zip(chunks, chunks[1:]):
        shared = len(set(a.frames) & set(b.frames))
        assert shared == 0 if b.frames[0] in cuts else shared >= overlap
    if (frames, length, overlap) == (24, 10, 3):  # three chunks of 10 sharing 3: the weights ramp across the share
        assert [c.frames[0] for c in chunks] == [0, 7, 14]
        assert chunks[0].weights[-3:] == pytest.approx([0.75, 0.5, 0.25])
        assert chunks[1].weights[:3] == pytest.approx([0.25, 0.5, 0.75])


def test_a_cut_is_found_where_the_picture_changes_and_not_in_a_pan():
    from torch import from_numpy

    frames = [from_numpy(f).permute(2, 0, 1) for f in crops(CONTENT, 5) + crops(STYLE, 4)]
    assert shot_cuts(frames, 0.5) == [5]
    assert shot_cuts(frames[:5], 0.5) == []


def test_the_schedule_runs_chunks_side_by_side_and_gives_a_chunk_start_the_first_frame_steps():
    chunks = split_clip(7, [3], None, 0)  # two shots: frames 0-2, 3-6
    positions = schedule(chunks, 2)
    assert [[e.frame if e else None for e in row] for row in positions] == [[0, 3], [1, 4], [2, 5], [None, 6]]
    assert position_starts(positions, 10, 4) == [0, 10, 14, 18, 22]
    one = schedule(chunks, 1)  # one after another: the second shot starts afresh
    assert [row[0].frame for row in one] == list(range(7))
    assert position_starts(one, 10, 4) == [0, 10, 14, 18, 28, 32, 36, 40]


# -- end to end -----------------------------------------------------------------------------------------------


def test_shots_side_by_side_give_the_frames_of_shots_one_after_another(tmp_path, progress_lines):
    clip = write_frames(tmp_path / "clip", crops(CONTENT, 3) + crops(STYLE, 3))  # a cut at frame 3
    apart = run(tmp_path, clip, tmp_path / "apart")
    together = run(tmp_path, clip, tmp_path / "together", "--data.parallel", "2")
    assert "Frames 1, 4 of 6 from step 0" in progress_lines and "Frames 3, 6 of 6 from step 2" in progress_lines
    assert len(apart) == len(together) == 6
    for t in range(6):  # the same optimization, batched: equal up to the batch's summation order
        assert largest_difference(apart[t], together[t]) < 1e-3, t
    # The cut: frame 3 starts a chunk and takes the first frame's steps (2), unless cuts are not looked for.
    def steps(name: str, *extra: str) -> str:
        run(tmp_path, clip, tmp_path / name, *extra, first=2, per_frame=1)
        return Image.open(tmp_path / name / "frame_00005.png").text["nst-lightning:step"]

    assert (steps("cut"), steps("no_cut", "--data.cut_threshold", "null")) == ("8", "7")


def test_overlapping_chunks_are_each_stylized_as_alone_and_cross_faded_where_they_meet(tmp_path, capsys):
    frames = crops(CONTENT, 6)
    whole = write_frames(tmp_path / "clip", frames)
    first, second = write_frames(tmp_path / "first", frames[:4]), write_frames(tmp_path / "second", frames[2:])
    a = run(tmp_path, first, tmp_path / "a")
    b = run(tmp_path, second, tmp_path / "b")
    capsys.readouterr()
    both = run(tmp_path, whole, tmp_path / "both", "--data.parallel", "2", "--data.chunk_frames", "4",
               "--data.overlap", "2")
    final = capsys.readouterr().out
    assert len(both) == 6
    for t in (0, 1):
        assert largest_difference(both[t], a[t]) < 1e-3  # chunk 1 alone
    for t in (4, 5):
        assert largest_difference(both[t], b[t - 2]) < 1e-3  # chunk 2 alone
    assert largest_difference(both[2], 2 / 3 * a[2] + 1 / 3 * b[0]) < 1e-3  # the cross-fade
    assert largest_difference(both[3], 1 / 3 * a[3] + 2 / 3 * b[1]) < 1e-3
    # Four positions (the two chunks' 4 frames side by side): 4 steps, where one chunk after the other takes 8.
    assert Image.open(tmp_path / "both" / "frame_00005.png").text["nst-lightning:step"] == "4"
    assert final.startswith(f"Stylized frames written to {tmp_path / 'both'}")  # a folder of PNGs, not a video
    border = float(final.split("where chunks meet ")[1].split(")")[0])  # the seam, measured on its own
    assert 0 < border and "warping error" in final


def test_an_interrupted_run_of_chunks_side_by_side_goes_on_to_the_same_frames(tmp_path, monkeypatch, capsys):
    clip = write_frames(tmp_path / "clip", crops(CONTENT, 6))
    args = ["--data.parallel", "2", "--data.chunk_frames", "4", "--data.overlap", "2"]
    straight = run(tmp_path, clip, tmp_path / "straight", *args, first=2, per_frame=2)
    finish_step = InterruptSaver.on_train_batch_end

    def ctrl_c_at_step_5(self, trainer, *rest):
        if trainer.global_step == 5:  # positions start at 0, 2, 4, 6: in the third, cross-faded frames pending
            self.signum = signal.SIGINT
        return finish_step(self, trainer, *rest)

    monkeypatch.setattr(InterruptSaver, "on_train_batch_end", ctrl_c_at_step_5)
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path, clip, tmp_path / "resumed", *args, first=2, per_frame=2)
    assert stopped.value.code == 130
    monkeypatch.setattr(InterruptSaver, "on_train_batch_end", finish_step)
    capsys.readouterr()
    resumed = run(tmp_path, clip, tmp_path / "resumed", *args, "--ckpt_path",
                  str(tmp_path / "resumed.run" / "interrupted.ckpt"), first=2, per_frame=2)
    assert len(resumed) == 6
    for t in range(6):
        assert largest_difference(straight[t], resumed[t]) < 1e-4, t


def test_bad_chunk_settings_are_one_line_errors(tmp_path, capsys):
    clip = write_frames(tmp_path / "clip", crops(CONTENT, 3))
    base = ["fit", "--config", "video", "--config", str(TINY), "--data.video", str(clip), "--data.style", str(STYLE),
            "--output", f"{tmp_path / 'out'}/"]
    expect_one_line_error(capsys, [*base, "--data.chunk_frames", "3", "--data.overlap", "2"], "data.chunk_frames",
                          "at least twice data.overlap", tmp_path=tmp_path)
    expect_one_line_error(capsys, [*base, "--data.parallel", "0"], "data.parallel", ">= 1", tmp_path=tmp_path)
    expect_one_line_error(capsys, [*base, "--data.cut_threshold", "2"], "data.cut_threshold", tmp_path=tmp_path)
    assert not (tmp_path / "out").exists()


# -- multi-pass -----------------------------------------------------------------------------------------------


def test_later_passes_go_backward_and_forward_over_each_chunk_in_turn():
    chunks = split_clip(5, [3], None, 0)  # frames 0-2 and 3-4
    positions = schedule(chunks, 2, passes=3)
    frames = [[(e.frame, e.sweep) if e else None for e in row] for row in positions]
    assert frames == [[(0, 1), (3, 1)], [(1, 1), (4, 1)], [(2, 1), None],
                      [(2, 2), None], [(1, 2), (4, 2)], [(0, 2), (3, 2)],
                      [(0, 3), (3, 3)], [(1, 3), (4, 3)], [(2, 3), None]]
    assert [e.neighbour for e in positions[4] if e] == [2, 5] and positions[1][0].neighbour == 0
    assert position_starts(positions, 10, 4, 2) == [0, 10, 14, 18, 20, 22, 24, 26, 28, 30]


def test_a_multi_pass_run_writes_its_last_pass_and_resumes_inside_a_later_pass(tmp_path, monkeypatch, progress_lines):
    clip = write_frames(tmp_path / "clip", crops(CONTENT, 4))
    args = ["--trainer.callbacks.init_args.passes", "2", "--trainer.callbacks.init_args.pass_steps", "2"]
    single = run(tmp_path, clip, tmp_path / "single", first=2, per_frame=1)
    straight = run(tmp_path, clip, tmp_path / "straight", *args, first=2, per_frame=1)
    assert "Frame 4 of 4 (pass 2/2) from step 5" in progress_lines
    assert "Frame 1 of 4 (pass 2/2) from step 11" in progress_lines
    assert Image.open(tmp_path / "straight" / "frame_00000.png").text["nst-lightning:step"] == "13"  # 2+1+1+1, 4 × 2
    assert all(largest_difference(a, b) > 1e-3 for a, b in zip(single, straight))  # every frame went over again
    finish_step = InterruptSaver.on_train_batch_end

    def ctrl_c_at_step_8(self, trainer, *rest):
        if trainer.global_step == 8:  # in the second pass: frame 4 done again, frame 3 half way
            self.signum = signal.SIGINT
        return finish_step(self, trainer, *rest)

    monkeypatch.setattr(InterruptSaver, "on_train_batch_end", ctrl_c_at_step_8)
    with pytest.raises(SystemExit):
        run(tmp_path, clip, tmp_path / "resumed", *args, first=2, per_frame=1)
    monkeypatch.setattr(InterruptSaver, "on_train_batch_end", finish_step)
    resumed = run(tmp_path, clip, tmp_path / "resumed", *args, "--ckpt_path",
                  str(tmp_path / "resumed.run" / "interrupted.ckpt"), first=2, per_frame=1)
    assert len(resumed) == 4
    for t in range(4):
        assert largest_difference(straight[t], resumed[t]) < 1e-4, t
