"""Video: reading and writing clips, optical flow and its cache, warping, reliability masks, the temporal loss,
the warping-error metric, and ``nst-lightning fit --config video`` end to end on a tiny synthetic clip."""

from __future__ import annotations

import json
import signal
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning.callbacks.interrupt import InterruptSaver
from nst_lightning.callbacks.video import VideoFrames
from nst_lightning.cli import main
from nst_lightning.cli.fit import build_cli
from nst_lightning.errors import ConfigValueError
from nst_lightning.model.losses.temporal import TemporalLoss
from nst_lightning.model.style_transfer import report_of
from nst_lightning.plugin import OpticalFlow, hookimpl
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.quality.temporal import WarpingError, warping_errors
from nst_lightning.video.extra import MissingVideoExtraError, require
from nst_lightning.video.flow import DISFlow, FlowCache, RAFTFlow
from nst_lightning.video.io import count_frames, read_clip
from nst_lightning.video.warp import closest_reliable, consistent, inside, off_motion_boundary, reliability, warp
from nst_lightning.video_data import VideoData

from .conftest import CONTENT, STYLE, TINY
from .helpers import expect_one_line_error, read_png

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

FRAMES, HEIGHT, WIDTH, SHIFT, FPS = 8, 48, 64, 2, 12


def pan(frames: int = FRAMES, shift: int = SHIFT) -> list[np.ndarray]:
    """A pan over the content photograph: frame t is a 48×64 crop ``shift·t`` px further right."""
    photo = np.asarray(Image.open(CONTENT).convert("RGB").resize((160, 120), Image.Resampling.LANCZOS))
    return [np.ascontiguousarray(photo[20 : 20 + HEIGHT, 8 + shift * t : 8 + shift * t + WIDTH]) for t in range(frames)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = FPS, audio: bool = False) -> Path:
    """``frames`` as an H.264 file written with PyAV (nearly lossless), with a mono AAC tone as long as the clip
    when ``audio``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "10"}
        sound = container.add_stream("aac", rate=22050) if audio else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            samples = (0.3 * np.sin(np.arange(22050 * len(frames) // fps) / 10)).astype(np.float32)[None]
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 22050, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


def audio_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(container.streams.audio[0]) if packet.size)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", pan())


def video_args(tmp_path: Path, video: Path, output: str, *extra: str, first: int = 2, per_frame: int = 1) -> list[str]:
    return ["fit", "--config", "video", "--config", str(TINY), "--data.video", str(video), "--data.size", str(WIDTH),
            "--data.style", str(STYLE), "--data.flow_cache", str(tmp_path / "flows"),
            "--trainer.callbacks.init_args.first_frame_steps", str(first),
            "--trainer.callbacks.init_args.steps_per_frame", str(per_frame),
            "--trainer.default_root_dir", str(tmp_path), "--output", output, *extra]


# -- reading ------------------------------------------------------------------------------------------------


def test_a_clip_is_read_with_its_frames_rate_and_size_and_a_folder_in_name_order(tmp_path, clip):
    read = read_clip(clip)
    assert (len(read.frames), read.fps, read.size) == (FRAMES, Fraction(FPS), (HEIGHT, WIDTH))
    source = pan()
    assert (read.frames[3].permute(1, 2, 0).float() - torch.from_numpy(source[3]).float()).abs().mean() < 4  # crf 10
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(source[:3]):  # written in reverse, read by name
        Image.fromarray(frame).save(folder / f"f{2 - t}.png")
    frames = read_clip(folder, long_edge=32).frames
    assert len(frames) == 3 and tuple(frames[0].shape) == (3, 24, 32)
    assert torch.equal(read_clip(folder).frames[0], torch.from_numpy(source[2]).permute(2, 0, 1))


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(MissingVideoExtraError, match=r"pip install 'nst-lightning\[video\]'"):
        require("av", "PyAV (av)")


# -- warping and masks ----------------------------------------------------------------------------------------


def test_warping_by_zero_is_the_identity_and_by_a_whole_pixel_shift_is_exact():
    image = torch.rand(2, 3, 10, 12)
    assert torch.allclose(warp(image, torch.zeros(1, 2, 10, 12)), image, atol=1e-6)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 3  # each pixel is 3 px further right in the other image
    assert torch.allclose(warp(image, flow)[..., :, :9], image[..., :, 3:], atol=1e-6)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 1] = -2  # 2 px further up
    assert torch.allclose(warp(image, flow)[..., 2:, :], image[..., :8, :], atol=1e-6)


def test_a_translation_is_reliable_except_the_band_that_leaves_the_image():
    w = torch.zeros(1, 2, 8, 16)
    w[:, 0] = 3
    mask = reliability(w, -w)[0, 0]
    assert mask[:, :13].eq(1).all() and mask[:, 13:].eq(0).all()  # x + 3 > 15: out of the image
    assert consistent(w, w)[0, 0].eq(0).all()  # the opposite flow going the same way fails the check everywhere


def test_the_consistency_threshold_is_sundaram_s():
    # |w + ŵ|² > 0.01 (|w|² + |ŵ|²) + 0.5 with w = 10: an error of 1 px passes (1 <= 2.31), 2 px fails (4 > 2.14)
    w = torch.zeros(1, 2, 4, 40)
    w[:, 0] = 10
    assert consistent(w, -w + torch.tensor([1.0, 0]).view(1, 2, 1, 1))[..., :, :20].eq(1).all()
    assert consistent(w, -w + torch.tensor([2.0, 0]).view(1, 2, 1, 1))[..., :, :20].eq(0).all()


def test_a_motion_boundary_is_marked_where_the_flow_jumps():
    w = torch.zeros(1, 2, 6, 12)
    w[:, 0, :, 6:] = 5  # the right half moves 5 px, the left half stays
    mask = off_motion_boundary(w)[0, 0]
    # central differences: (5 - 0) / 2 at columns 5 and 6 → 6.25 > 0.01·|w|² + 0.002; elsewhere 0
    assert mask[:, [5, 6]].eq(0).all()
    assert mask[:, :5].eq(1).all() and mask[:, 7:].eq(1).all()
    assert inside(torch.zeros(1, 2, 6, 12)).eq(1).all()


def test_dis_recovers_a_pan_and_its_masks_mark_the_disoccluded_band():
    frames = [torch.from_numpy(f).permute(2, 0, 1).contiguous() for f in pan(2, shift=3)]
    backward = DISFlow().compute(frames[1], frames[0])  # frame 1's pixels were 3 px to the right in frame 0
    forward = DISFlow().compute(frames[0], frames[1])
    core = backward[..., 8:-8, 8:-8]
    assert (core[:, 0] - 3).abs().mean() < 0.3 and core[:, 1].abs().mean() < 0.3
    mask = reliability(backward, forward)[0, 0]
    assert mask[:, -2:].mean() < 0.2  # those pixels come from outside frame 0
    assert mask[8:-8, 8:-8].mean() > 0.9


def test_raft_takes_the_weights_file_it_is_given_and_names_a_wrong_one(tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)  # random weights: never a download
    frames = [torch.from_numpy(np.ascontiguousarray(np.tile(f, (2, 2, 1))[:90, :124])).permute(2, 0, 1).contiguous()
              for f in pan(2)]
    flow = RAFTFlow(str(weights), model="small", iterations=2).compute(*frames)
    assert flow.shape == (1, 2, 90, 124) and torch.isfinite(flow).all()  # padded to RAFT's 128 px and back
    assert RAFTFlow(str(weights), "small", 2).identity() != RAFTFlow(str(weights), "small", 3).identity()
    with pytest.raises(ConfigValueError, match="does not exist"):
        RAFTFlow(str(tmp_path / "none.pth"))
    with pytest.raises(ConfigValueError, match="not a state dict of torchvision's raft_large"):
        RAFTFlow(str(weights), model="large").compute(*frames)  # small weights for the large model


# -- the flow cache -------------------------------------------------------------------------------------------


class CountingFlow(DISFlow):
    calls = 0

    def compute(self, first, second):
        CountingFlow.calls += 1
        return super().compute(first, second)


def test_flows_are_cached_by_frames_method_and_size(tmp_path, clip):
    CountingFlow.calls = 0

    def flows(**kwargs):
        data = VideoData(str(clip), str(STYLE), size=WIDTH, flow_cache=str(tmp_path / "cache"), **kwargs)
        return [data.flow_to_previous(t) for t in range(1, data.frame_count)]

    first = flows(flow=CountingFlow())
    assert CountingFlow.calls == 2 * (FRAMES - 1)  # forward and backward for each neighbouring pair
    again = flows(flow=CountingFlow())
    assert CountingFlow.calls == 2 * (FRAMES - 1)  # all from the cache
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    flows(flow=CountingFlow(preset="fast"))
    assert CountingFlow.calls == 4 * (FRAMES - 1)  # another setting, another key
    FlowCache(CountingFlow(), tmp_path / "cache").flow(*[f.frames[0] for f in (read_clip(clip, 32),) * 2])
    assert CountingFlow.calls == 4 * (FRAMES - 1) + 1  # another size


class ZeroFlow(OpticalFlow):
    def compute(self, first, second):
        return torch.zeros(1, 2, *first.shape[-2:])


class ZeroFlowPlugin:
    @staticmethod
    @hookimpl
    def nst_register_flows(register):
        register(ZeroFlow)


def test_a_plugin_registers_a_flow_through_the_hook(tmp_path, clip):
    registry = load_plugins(autoload=False, extra=[("zero_flow", ZeroFlowPlugin)]).registry
    assert registry.names("flow") == ["DISFlow", "DeepFlow", "RAFTFlow", "ZeroFlow"]
    data = VideoData(str(clip), str(STYLE), size=WIDTH, flow=registry.classes["flow"]["ZeroFlow"](),
                     flow_cache=str(tmp_path / "cache"))
    flow, mask = data.flow_to_previous(1)
    assert flow.abs().max() == 0 and mask.eq(1).all()


# -- the temporal loss and the metric -------------------------------------------------------------------------


def test_the_temporal_loss_is_the_masked_mean_square_by_hand():
    term = TemporalLoss(weight=2.0)
    image = torch.full((1, 3, 2, 2), 0.5)
    assert term({}, image).item() == 0  # no reference yet: the first frame
    warped = torch.zeros(1, 3, 2, 2)
    warped[..., 0, 0] = 0.1
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    term.set_reference(warped, mask)
    # 3 channels × (0.4² + 0.5² + 0.5²) over D = 3·2·2 = 12 values, times the weight 2
    expected = 2.0 * 3 * (0.16 + 0.25 + 0.25) / 12
    assert term({}, image).item() == pytest.approx(expected, rel=1e-6)
    image.requires_grad_(True)
    term({}, image).backward()
    assert image.grad[..., 1, 0].abs().max() == 0 and image.grad[..., 0, 1].abs().min() > 0
    big = TemporalLoss(weight=2.0)  # the same difference over a larger image: the same loss
    big.set_reference(torch.zeros(1, 3, 8, 8))
    small = TemporalLoss(weight=2.0)
    small.set_reference(torch.zeros(1, 3, 2, 2))
    assert big({}, torch.full((1, 3, 8, 8), 0.5)).item() == pytest.approx(small({}, torch.full((1, 3, 2, 2), 0.5)).item())


def test_long_term_weights_hold_each_pixel_to_its_closest_reliable_frame():
    c1 = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])
    c2 = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    c3 = torch.tensor([[[[1.0, 1.0, 1.0, 0.0]]]])
    weights = closest_reliable([c1, c2, c3])  # max(c_j − Σ closer c_k, 0)
    assert [w.flatten().tolist() for w in weights] == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]]
    term = TemporalLoss(weight=1.0)
    image = torch.zeros(1, 3, 1, 4)
    term.set_reference([torch.full_like(image, 0.5), torch.full_like(image, 1.0), torch.full_like(image, 0.1)], weights)
    # pixels 0 and 3 against 0.5, pixel 1 against 1.0, pixel 2 against 0.1: 3 channels each, over D = 12
    assert term({}, image).item() == pytest.approx(3 * (0.25 + 1.0 + 0.01 + 0.25) / 12, rel=1e-6)


def test_the_warping_error_is_zero_for_a_static_clip_and_the_masked_mean_square_otherwise():
    metric = WarpingError()
    frame = torch.rand(1, 3, 8, 8)
    flow, ones = torch.zeros(1, 2, 8, 8), torch.ones(1, 1, 8, 8)
    metric.update(frame, frame.clone(), flow, ones)
    assert metric.compute().item() == pytest.approx(0, abs=1e-10)
    half = torch.ones(1, 1, 8, 8)
    half[..., 4:] = 0
    current = torch.zeros(1, 3, 8, 8)
    current[..., :, 4:] = 1.0  # differs only where the mask is 0
    assert warping_errors(torch.zeros(1, 3, 8, 8), current, flow, half).item() == pytest.approx(0, abs=1e-10)
    metric.update(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5), flow, half)
    assert metric.compute().item() == pytest.approx(0.25 / 2)  # the mean of 0 and 0.25
    assert float(metric.worst) == pytest.approx(0.25)
    shifted = torch.zeros(1, 2, 8, 8)
    shifted[:, 0] = 1  # current = previous moved 1 px left: warping brings it back exactly
    previous = torch.rand(1, 3, 8, 8)
    current = torch.roll(previous, -1, dims=-1)
    assert warping_errors(previous, current, shifted, inside(shifted)).item() == pytest.approx(0, abs=1e-10)


# -- end to end -----------------------------------------------------------------------------------------------


def test_fit_writes_a_video_with_the_clips_frames_rate_size_and_audio_and_a_folder_of_pngs(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", pan(), audio=True)
    main(video_args(tmp_path, clip, str(tmp_path / "out.mp4")))
    out = capsys.readouterr().out
    assert count_frames(tmp_path / "out.mp4") == (FRAMES, Fraction(FPS), (HEIGHT, WIDTH))
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(clip) > 5  # the sound copied as it was
    run_style = float(out.split("(style ")[1].split()[0])
    main(["score", str(tmp_path / "out.mp4"), "--content", str(clip), "--style", str(STYLE), "--json"])
    scored = json.loads(capsys.readouterr().out)
    assert (scored["frames"], scored["width"], scored["height"]) == (FRAMES, WIDTH, HEIGHT)
    assert scored["style_distance"] == pytest.approx(run_style, rel=0.1)  # the run's numbers, up to H.264's loss
    assert scored["worst_style_distance"] >= scored["style_distance"] and scored["warping_error"] > 0
    assert "Stylized video written to" in out and "warping error" in out
    assert not list(tmp_path.glob(".out.mp4*"))  # no temporary file left
    flows = sorted((tmp_path / "flows").iterdir())
    assert len(flows) == 2 * (FRAMES - 1)
    # PNGs, the long-term loss (frame 2 also held to frame 0): the flows between neighbours come from the cache
    main(video_args(tmp_path, clip, str(tmp_path / "frames") + "/", "--data.max_frames", "3",
                    "--trainer.callbacks.init_args.references", "[1, 2]"))
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"frame_{t:05d}.png" for t in range(3)]
    assert tuple(read_png(tmp_path / "frames" / "frame_00002.png").shape) == (1, 3, HEIGHT, WIDTH)
    assert set(flows) < set((tmp_path / "flows").iterdir())
    assert len(list((tmp_path / "flows").iterdir())) == len(flows) + 2  # only frame 2 to 0 and back were new


def test_a_video_is_written_at_the_sources_size_whatever_size_the_run_used(tmp_path, clip):
    main(video_args(tmp_path, clip, str(tmp_path / "small.mp4"), "--data.max_frames", "2", "--data.size", "32"))
    assert count_frames(tmp_path / "small.mp4") == (2, Fraction(FPS), (HEIGHT, WIDTH))  # stylized at 32x24
    main(video_args(tmp_path, clip, str(tmp_path / "small") + "/", "--data.max_frames", "2", "--data.size", "32"))
    assert tuple(read_png(tmp_path / "small" / "frame_00001.png").shape) == (1, 3, 24, 32)  # PNGs: the run's size


def test_the_temporal_loss_and_warm_start_make_the_clip_steadier(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", pan(3))
    scores = {}
    for name, extra in (("alone", ["--model.losses.temporal.init_args.weight", "0",
                                   "--trainer.callbacks.init_args.warm_start", "false"]),
                        ("temporal", [])):
        main(video_args(tmp_path, clip, str(tmp_path / f"{name}.mp4"), *extra, first=6, per_frame=4))
        scores[name] = read_clip(tmp_path / f"{name}.mp4")
    data = VideoData(str(clip), str(STYLE), size=WIDTH, flow_cache=str(tmp_path / "flows"))

    def error(read):
        out = [read.frame(t) for t in range(3)]
        return sum(warping_errors(out[t - 1], out[t], *data.flow_to_previous(t)).item() for t in range(1, 3)) / 2

    alone, temporal = error(scores["alone"]), error(scores["temporal"])
    assert temporal < 0.5 * alone, (temporal, alone)


def test_bad_video_inputs_are_one_line_errors(tmp_path, capsys, clip):
    expect_one_line_error(capsys, video_args(tmp_path, tmp_path / "missing.mp4", str(tmp_path / "out.mp4")),
                          "missing.mp4", "does not exist", tmp_path=tmp_path)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    expect_one_line_error(capsys, video_args(tmp_path, broken, str(tmp_path / "out.mp4")), "broken.mp4",
                          "cannot be read", tmp_path=tmp_path)
    folder = tmp_path / "sizes"
    folder.mkdir()
    Image.new("RGB", (64, 48)).save(folder / "a.png")
    Image.new("RGB", (48, 64)).save(folder / "b.png")
    expect_one_line_error(capsys, video_args(tmp_path, folder, str(tmp_path / "out.mp4")), "frame 1", "one size",
                          tmp_path=tmp_path)
    (tmp_path / "empty").mkdir()
    expect_one_line_error(capsys, video_args(tmp_path, tmp_path / "empty", str(tmp_path / "out.mp4")),
                          "without frames", tmp_path=tmp_path)
    expect_one_line_error(capsys, video_args(tmp_path, clip, str(tmp_path / "out.gif")), "must end in .mp4",
                          tmp_path=tmp_path)
    expect_one_line_error(capsys, ["score", str(clip), "--content", str(write_clip(tmp_path / "short.mp4", pan(3))),
                                   "--style", str(STYLE)], "8 frames", "gives 3", tmp_path=tmp_path)
    (tmp_path / "taken.mp4").write_bytes(b"mine")
    expect_one_line_error(capsys, video_args(tmp_path, clip, str(tmp_path / "taken.mp4")), "exists",
                          "--overwrite", tmp_path=tmp_path)
    assert (tmp_path / "taken.mp4").read_bytes() == b"mine"


def test_an_interrupted_clip_goes_on_from_its_checkpoint_keeping_the_frames_it_finished(tmp_path, monkeypatch, capsys):
    clip = write_clip(tmp_path / "clip.mp4", pan(4))
    args = video_args(tmp_path, clip, str(tmp_path / "out.mp4"), first=2, per_frame=2)  # frames from steps 0, 2, 4, 6
    finish_step = InterruptSaver.on_train_batch_end

    def ctrl_c_at_step_5(self, trainer, *rest):
        if trainer.global_step == 5:  # in the middle of frame 2
            self.signum = signal.SIGINT
        return finish_step(self, trainer, *rest)

    monkeypatch.setattr(InterruptSaver, "on_train_batch_end", ctrl_c_at_step_5)
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 130 and "--ckpt_path" in capsys.readouterr().err
    frames, checkpoint = tmp_path / "out.run" / "frames", tmp_path / "out.run" / "interrupted.ckpt"
    assert sorted(p.name for p in frames.iterdir()) == ["frame_00000.png", "frame_00001.png"]
    assert checkpoint.is_file() and not (tmp_path / "out.mp4").exists()  # no half-written video
    kept = [read_png(frames / f"frame_0000{t}.png") for t in range(2)]
    monkeypatch.setattr(InterruptSaver, "on_train_batch_end", finish_step)
    expect_one_line_error(capsys, args, "holds 2 frames of an earlier run", f"--ckpt_path {str(checkpoint)!r}",
                          tmp_path=tmp_path)  # run afresh: refused, naming the way to go on
    main([*args, "--ckpt_path", str(checkpoint)])
    assert count_frames(tmp_path / "out.mp4") == (4, Fraction(FPS), (HEIGHT, WIDTH))
    assert not frames.exists() and not checkpoint.exists()  # encoded, and the interrupt's files consumed
    written = read_clip(tmp_path / "out.mp4")
    for t in range(2):  # the frames finished before the interrupt are the ones in the video (up to H.264's loss)
        assert (written.frame(t) - kept[t]).abs().mean() < 0.03


def test_a_frame_ends_early_once_its_loss_stops_falling_and_the_next_frames_start_sooner(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", pan(3))
    cli = build_cli(video_args(tmp_path, clip, str(tmp_path / "out.mp4"), "--trainer.callbacks.init_args.tolerance",
                               "0.02", "--trainer.callbacks.init_args.window", "4", first=10, per_frame=30)[1:], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    frames = next(c for c in cli.trainer.callbacks if isinstance(c, VideoFrames))
    steps = frames.frame_steps
    assert len(steps) == 3 and sum(steps) == cli.trainer.global_step == frames.starts[-1]
    assert all(4 < s < 30 for s in steps[1:]), steps  # warm-started frames settle well before their budget
    assert report_of(cli.model).quality[0]["frame_steps"] == steps
    assert count_frames(tmp_path / "out.mp4")[0] == 3


def test_a_config_finds_its_clip_beside_it(tmp_path, clip):
    import yaml

    from nst_lightning.cli.argv_checks import resolve_configs

    (tmp_path / "frames").mkdir()
    for name, video in (("run.yaml", "clip.mp4"), ("frames.yaml", "frames")):
        (tmp_path / name).write_text(f"data:\n  video: {video}\n")
        resolved = resolve_configs(["fit", "--config", str(tmp_path / name)])
        assert yaml.safe_load(resolved[2])["data"]["video"] == str(tmp_path / video)
