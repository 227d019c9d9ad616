"""Tiled optimization: the tiled loss and gradient equal the untiled ones (edges, masks, two styles), a few
steps give the same image, the budget chooses tiles and L-BFGS's history, bad settings are one-line errors,
a tiled run resumes after an interrupt, and 16-bit PNGs read back with their metadata."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning.callbacks.multiscale import MultiScale
from nst_lightning.data import StyleTransferData
from nst_lightning.image.io import save_png
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.base import LossTerm
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss, gram_matrix, window_gram_sums
from nst_lightning.model.losses.masked_gram import MaskedGramStyleLoss
from nst_lightning.model.losses.total_variation import TotalVariationLoss
from nst_lightning.model.optimizers import ImageAdam, ImageLBFGS, optimizer_traits
from nst_lightning.model.run_plan import RunPlan
from nst_lightning.model.style_transfer import StyleTransfer
from nst_lightning.model.targets import set_targets as compute_targets
from nst_lightning.model.tiled_loss import assembled_features, sum_over_tiles, tiled_loss_and_grad
from nst_lightning.model.tiling import Tiling, TilingError, plan_tiles, tile_geometry

from .conftest import CONTENT, STYLE
from .fit_helpers import fit
from .helpers import expect_one_line_error, read_png, run_args, wait_until_running
from .helpers import quiet_args as bad_input_args

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    backbone = VGG19(weights="none")
    backbone.truncate(LAYERS)
    return backbone


def test_margin_and_alignment_come_from_the_backbone(vgg):
    field = vgg.layer_geometry("relu5_1")
    assert (field.size, field.jump, field.margin_before, field.margin_after) == (156, 16, 70, 70)
    geometry = tile_geometry(vgg, LAYERS)
    assert (geometry.margin, geometry.align, geometry.deepest, geometry.min_tile) == (80, 16, "relu5_1", 176)
    assert tile_geometry(vgg, ["relu3_1"]).margin == 12  # 10 px of reach on a 4 px grid


def test_tiles_cover_the_image_once_with_aligned_origins(vgg):
    plan = plan_tiles(200, 300, 192, tile_geometry(vgg, LAYERS))
    owned = torch.zeros(200, 300, dtype=torch.int32)
    for tile in plan.tiles:
        assert tile.rows[0] % 16 == 0 and tile.cols[0] % 16 == 0
        assert tile.rows[1] - tile.rows[0] <= 192 and tile.cols[1] - tile.cols[0] <= 192
        owned[tile.own_rows[0] : tile.own_rows[1], tile.own_cols[0] : tile.own_cols[1]] += 1
    assert bool((owned == 1).all()) and len(plan) > 2


def make_losses(styles: int, masked: bool) -> dict[str, LossTerm]:
    style = MaskedGramStyleLoss() if masked else GramStyleLoss()
    return {"content": ContentLoss(), "style": style, "tv": TotalVariationLoss(weight=10.0)}


def set_targets(vgg, losses, h, w, styles: int, masked: bool) -> None:
    torch.manual_seed(1)
    content = torch.rand(1, 3, h, w)
    style_images = [torch.rand(1, 3, 96, 128) for _ in range(styles)]
    masks = []
    if masked:
        left = torch.zeros(1, 1, h, w)
        left[..., : w // 3] = 1.0
        left[..., w // 3 : w // 2] = 0.5  # grey: a weighted region, across tile borders
        masks = [left, 1 - left]
    compute_targets(vgg, losses, content, style_images, [1.0 / styles] * styles, masks)


# Sizes not multiples of 16 (the last tile's pooling floors), and 2x2 tiles that split both axes.
@pytest.mark.parametrize(("h", "w", "tile", "styles", "masked"), [
    (200, 216, 192, 1, False),
    (197, 222, 192, 2, False),
    (200, 216, 192, 2, True),
])
def test_tiled_loss_and_gradient_equal_the_untiled_ones(vgg, h, w, tile, styles, masked):
    losses = make_losses(styles, masked)
    set_targets(vgg, losses, h, w, styles, masked)
    torch.manual_seed(2)
    image = torch.rand(1, 3, h, w, requires_grad=True)
    features = vgg(image, LAYERS)
    values = {name: term(features, image) for name, term in losses.items()}
    torch.stack([v.sum() for v in values.values()]).sum().backward()
    plan = plan_tiles(h, w, tile, tile_geometry(vgg, LAYERS))
    assert len(plan) == 4
    tiled, grad = tiled_loss_and_grad(vgg, losses, image.detach(), plan)
    for name in losses:
        assert torch.allclose(tiled[name], values[name].detach(), rtol=1e-5, atol=0), name
    assert float((grad - image.grad).norm() / image.grad.norm()) < 1e-4


def test_a_margin_short_of_the_receptive_field_is_not_exact(vgg):
    losses = make_losses(1, False)
    set_targets(vgg, losses, 200, 216, 1, False)
    image = torch.rand(1, 3, 200, 216, requires_grad=True)
    features = vgg(image, LAYERS)
    torch.stack([t(features, image).sum() for t in losses.values()]).sum().backward()
    geometry = tile_geometry(vgg, LAYERS)
    short = dataclasses.replace(geometry, margin=16)  # enough for relu2_1, not for the deeper layers
    _, grad = tiled_loss_and_grad(vgg, losses, image.detach(), plan_tiles(200, 216, 192, short))
    assert float((grad - image.grad).norm() / image.grad.norm()) > 1e-4  # the exact margin: about 3e-7


def test_tiled_targets_equal_the_untiled_ones(vgg):
    image = torch.rand(1, 3, 190, 230)
    plan = plan_tiles(190, 230, 176, tile_geometry(vgg, LAYERS))
    maps = assembled_features(vgg, image, plan, ["relu4_2"])
    grams = ["relu1_1", "relu5_1"]
    with torch.no_grad():
        sums = sum_over_tiles(vgg, image, plan, grams, lambda f, x, window: window_gram_sums(f, window, grams))
        whole = vgg(image, LAYERS)
    assert torch.allclose(maps["relu4_2"], whole["relu4_2"], atol=1e-5, rtol=1e-4)
    for i, name in enumerate(grams):
        assert torch.allclose(sums[f"gram_sum_{i}"] / sums[f"count_{i}"], gram_matrix(whole[name]), rtol=1e-4, atol=1e-6)


def run(size: int, tiling: Tiling, steps: int, *callbacks, optimizer=None) -> StyleTransfer:
    torch.manual_seed(0)  # the same random backbone in every run
    model = StyleTransfer(backbone=VGG19(weights="none"), tiling=tiling, optimizer=optimizer)
    data = StyleTransferData(content=str(CONTENT), style=str(STYLE), size=size)
    return fit(model, data, steps, *callbacks)


def test_a_few_steps_give_the_untiled_image():
    # Adam: L-BFGS without a line search is chaotic here (a 1e-6 change of the init changes the image by
    # 43/255 after 20 steps, README: Large images), so its runs cannot be compared after many steps.
    untiled = run(224, Tiling(mode="off"), 4, optimizer=ImageAdam)
    tiled = run(224, Tiling(tile_size=192), 4, optimizer=ImageAdam)
    assert untiled.report.tile_count == 1 and tiled.report.tile_count == 2
    assert float((untiled.image - tiled.image).abs().max()) < 1 / 255


def test_multiscale_runs_coarse_scales_whole_and_tiles_the_final_one():
    seen = []

    class Record(MultiScale):
        def on_train_batch_end(self, trainer, pl_module, *args):  # noqa: ANN001, ANN002
            seen.append((tuple(pl_module.image.shape[-2:]), pl_module.report.tile_count))

    model = run(224, Tiling(tile_size=176), 3, Record(scales=2, steps_per_scale=1), optimizer=torch.optim.Adam)
    assert seen[0] == ((118, 158), 1) and seen[-1][0] == (168, 224) and seen[-1][1] > 1
    assert torch.isfinite(model.image).all()


# -- the budget -------------------------------------------------------------------------------


def choose(vgg, tiling: Tiling, height: int, width: int, optimizer=ImageLBFGS, available: int = 2**50):
    """The run plan's tile choice for one image of ``height``×``width`` with ``available`` bytes free."""
    plan = RunPlan(vgg, make_losses(1, False), tiling, optimizer_traits(optimizer), available=available)
    return plan.tile_choice(height, width)


def test_the_budget_chooses_untiled_tiles_and_history(vgg):
    small = choose(vgg, Tiling(memory_budget=6), 384, 512)
    assert small.tile_size is None and small.history is None  # small images run as before
    large = choose(vgg, Tiling(memory_budget=6), 3072, 4096)
    assert large.tile_size is not None and large.tile_size % 16 == 0 and large.tile_size >= 512
    assert 1 <= large.history < 100  # L-BFGS's history is cut to fit
    more = choose(vgg, Tiling(memory_budget=12), 3072, 4096)
    assert more.tile_size > large.tile_size and more.history > large.history
    adam = choose(vgg, Tiling(memory_budget=6), 3072, 4096, optimizer=ImageAdam)
    assert adam.history is None and adam.tile_size > large.tile_size  # no history to hold
    fixed = choose(vgg, Tiling(tile_size=520, memory_budget=6), 3072, 4096)
    assert fixed.tile_size == 512  # rounded down to the 16 px grid
    assert choose(vgg, Tiling(mode="off", memory_budget=0.1), 3072, 4096).tile_size is None
    # Without memory_budget the budget is the memory available when the plan was made, read once.
    assert choose(vgg, Tiling(), 3072, 4096, available=6 * 2**30).budget == 6 * 2**30
    assert choose(vgg, Tiling(memory_budget=12), 3072, 4096, available=6 * 2**30).budget == 6 * 2**30


def test_bad_settings_are_errors_that_name_the_key(vgg):
    with pytest.raises(TilingError, match=r"^model\.tiling\.tile_size: 160 px leaves no interior.*at least 176 px"):
        choose(vgg, Tiling(tile_size=160), 1000, 1000)
    with pytest.raises(TilingError, match=r"^model\.tiling\.memory_budget: 0\.50 GiB cannot hold"):
        choose(vgg, Tiling(memory_budget=0.5), 3072, 4096)
    with pytest.raises(ValueError, match="model.tiling.mode"):
        Tiling(mode="sometimes")


class NotTileable(LossTerm):
    def __init__(self) -> None:
        super().__init__(1.0, ["relu2_1"])

    def forward(self, features, image):  # noqa: ANN001, ANN201
        return features["relu2_1"].float().mean()


def test_a_loss_that_cannot_be_tiled_says_so(vgg):
    losses = {"mine": NotTileable()}
    losses["mine"].config_key = "model.losses.mine"
    plan = plan_tiles(200, 216, 192, tile_geometry(vgg, LAYERS))
    with pytest.raises(TilingError, match=r"^model\.losses\.mine: NotTileable cannot be tiled"):
        tiled_loss_and_grad(vgg, losses, torch.rand(1, 3, 200, 216), plan)


@pytest.mark.parametrize(("extra", "needles"), [
    (["--model.tiling.tile_size", "100"], ["model.tiling.tile_size", "at least 176 px"]),
    (["--model.tiling.memory_budget", "0.001", "--data.size", "256"], ["model.tiling.memory_budget", "GiB"]),
    (["--output_bit_depth", "12"], ["output_bit_depth", "8 or 16"]),
])
def test_bad_tiling_settings_on_the_command_line(tmp_path, capsys, extra, needles):
    argv = bad_input_args(tmp_path, "--data.size", "256", *extra)
    expect_one_line_error(capsys, argv, *needles, tmp_path=tmp_path)


# -- robustness -------------------------------------------------------------------------------


TILED = ["--data.size", "224", "--model.tiling.tile_size", "192", "--model.backbone.init_args.weights", "none"]


def test_interrupt_and_resume_during_a_tiled_run(tmp_path):
    from nst_lightning.cli import main

    env = dict(os.environ, OMP_NUM_THREADS="1", NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-m", "nst_lightning.cli",
               *run_args(tmp_path, "ImageLBFGS", 100_000, "out.png", "--snapshot_every", "1", *TILED)]
    child = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_running(child, tmp_path / "out.run" / "step00002.png")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 128 + signal.SIGINT, err
    assert "Tiling: 224x168 px in 2 tiles" in err
    ckpt_path = tmp_path / "out.run" / "interrupted.ckpt"
    step = torch.load(ckpt_path, weights_only=True, map_location="cpu")["global_step"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(run_args(tmp_path, "ImageLBFGS", step + 2, "out.png", *TILED, "--ckpt_path", str(ckpt_path)))
        main(run_args(tmp_path, "ImageLBFGS", step + 2, "uninterrupted.png", *TILED))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(read_png(tmp_path / "out.png"), read_png(tmp_path / "uninterrupted.png"))


# -- 16-bit output ----------------------------------------------------------------------------


def decode_png16(data: bytes) -> np.ndarray:
    """The pixels of a 16-bit RGB PNG written with the Sub filter, decoded independently of the writer."""
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (16, 2)
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width * 6 + 1)
    assert (raw[:, 0] == 1).all()
    rows = raw[:, 1:].astype(np.int64)
    for x in range(6, width * 6):
        rows[:, x] = (rows[:, x] + rows[:, x - 6]) % 256
    return (rows[:, 0::2] * 256 + rows[:, 1::2]).reshape(height, width, 3)


def test_16_bit_png_reads_back_with_its_metadata(tmp_path):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 21, 34)
    path = save_png(image, tmp_path / "print.png", {"Software": "nst-lightning", "nst-lightning:config": "a: é"}, 16)
    with Image.open(path) as opened:
        opened.load()
        assert opened.size == (34, 21) and opened.text["nst-lightning:config"] == "a: é"
    pixels = decode_png16(path.read_bytes())
    expected = image[0].permute(1, 2, 0).mul(65535).round().numpy()
    assert np.array_equal(pixels, expected)
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left behind


def test_the_command_writes_16_bit_output(tmp_path):
    from nst_lightning.cli import main

    main(bad_input_args(tmp_path, "--output_bit_depth", "16"))
    data = (tmp_path / "out" / "out.png").read_bytes()
    assert data[24:26] == b"\x10\x02"  # IHDR: bit depth 16, colour type RGB
    assert "nst-lightning:config" in Image.open(io.BytesIO(data)).text
