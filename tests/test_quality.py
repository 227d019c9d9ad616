"""The quality metrics, ``nst-lightning score`` and the quality a run reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst_lightning.cli import main
from nst_lightning.quality.distances import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    blend,
    content_distance_from,
    content_distance_of,
    features,
    geometric_mean,
    gram,
    image_statistics,
    relative,
    scoring_plan,
    style_distance_of,
    style_layer_distances,
)
from nst_lightning.quality.metrics import SSIM, ContentDistance, StyleDistance, ssim_by_tiles
from nst_lightning.quality.scoring import load_bicubic, score_file, score_tensor

from .conftest import CONTENT, DEFAULT, STYLE

# -- the definitions, by hand on tiny tensors --------------------------------------------------------


def test_gram_is_divided_by_c_h_w():
    f = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)  # C=1, H=W=2
    assert gram(f).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    f2 = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2: rows (1,0) and (0,2)
    assert torch.allclose(gram(f2), torch.tensor([[[1.0, 0.0], [0.0, 4.0]]]) / 4)


def test_gram_with_a_full_mask_is_the_plain_gram_and_a_half_mask_its_region():
    f = torch.rand(1, 3, 4, 4)
    assert torch.allclose(gram(f, torch.ones(1, 1, 4, 4)), gram(f), atol=1e-6)
    left = torch.zeros(1, 1, 4, 4)
    left[..., :2] = 1
    assert torch.allclose(gram(f, left), gram(f[..., :2].contiguous()), atol=1e-6)


def test_relative_distance_by_hand():
    assert relative(torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 0.0]])).item() == pytest.approx(16 / 9)
    assert relative(torch.ones(2, 3), torch.ones(1, 3)).tolist() == [0.0, 0.0]  # per image, target broadcast


def test_style_and_content_distance_by_hand():
    feats = {name: torch.rand(1, 4, 3, 3) + 0.1 for name in (*STYLE_LAYERS, CONTENT_LAYER)}
    target = {name: gram(feats[name]) for name in STYLE_LAYERS}
    doubled = {name: 2 * f for name, f in feats.items()}  # Grams ×4: ‖4G − G‖² / ‖G‖² = 9 at every layer
    assert style_distance_of(doubled, target).item() == pytest.approx(9.0, rel=1e-5)
    assert content_distance_of(doubled, feats).item() == pytest.approx(1.0, rel=1e-5)  # ‖2F − F‖² / ‖F‖²
    assert style_distance_of(feats, target).item() == pytest.approx(0.0, abs=1e-7)
    # each layer's own distance, and their geometric mean: Grams × k² give (k² − 1)² = 1, 4, 16, 64, 256
    scaled = {name: (2**i + 1) ** 0.5 * feats[name] for i, name in enumerate(STYLE_LAYERS)}
    grams = {name: gram(scaled[name]) for name in STYLE_LAYERS}
    assert style_layer_distances(grams, target)[0].tolist() == pytest.approx([1, 4, 16, 64, 256], rel=1e-4)
    assert style_distance_of(scaled, target).item() == pytest.approx(16.0, rel=1e-4)  # (1·4·16·64·256)^(1/5)
    assert geometric_mean(torch.tensor([[1.0, 4, 16, 64, 256], [2.0, 2, 2, 2, 2]])).tolist() == pytest.approx([16, 2])
    # a blend of two styles' Grams, normalized weights
    other = {name: 3 * t for name, t in target.items()}
    mixed = blend([target, other], [1, 3])
    assert torch.allclose(mixed[STYLE_LAYERS[0]], 2.5 * target[STYLE_LAYERS[0]])


# -- the torchmetrics Metric contract ----------------------------------------------------------------


def test_zero_for_identical_images():
    image = torch.rand(1, 3, 32, 40)
    style, content = StyleDistance(), ContentDistance()
    style.update(image, image)
    content.update(image, image)
    assert style.compute().item() == pytest.approx(0.0, abs=1e-6)
    assert content.compute().item() == pytest.approx(0.0, abs=1e-6)


def test_metric_accumulates_resets_and_forward_returns_the_batch_value():
    torch.manual_seed(0)
    style_image, a, b = torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(1, 3, 32, 32)
    metric = StyleDistance()
    batch_a = metric(a, style_image)  # forward: this batch's value, and accumulated
    metric.update(b, style_image)
    alone_b = StyleDistance()
    alone_b.update(b, style_image)
    expected = (2 * batch_a + alone_b.compute()) / 3  # the mean over the three images
    assert metric.compute().item() == pytest.approx(expected.item(), rel=1e-5)
    assert metric.count.item() == 3
    metric.reset()
    assert metric.count.item() == 0 and metric.total.item() == 0
    metric.update(b, style_image)
    assert metric.compute().item() == pytest.approx(alone_b.compute().item(), rel=1e-6)


def test_content_distance_needs_the_output_size():
    with pytest.raises(ValueError, match="resize it first"):
        ContentDistance().update(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))


def test_masked_style_distance_is_per_region():
    torch.manual_seed(0)
    image, s1, s2 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    full = torch.ones(1, 1, 32, 32)
    masked, plain = StyleDistance(), StyleDistance()
    masked.update(image, [s1, s2], masks=[full, full])
    d1, d2 = StyleDistance(), StyleDistance()
    d1.update(image, s1)
    d2.update(image, s2)
    # with masks, each layer's distance is the mean of the regions' values; the aggregate their geometric mean
    layers = []
    for layer in STYLE_LAYERS:
        m1, m2 = StyleDistance(layer=layer), StyleDistance(layer=layer)
        m1.update(image, s1)
        m2.update(image, s2)
        layers.append((m1.compute().item() + m2.compute().item()) / 2)
    expected = float(torch.tensor(layers).log().mean().exp())
    assert masked.compute().item() == pytest.approx(expected, rel=1e-4)
    assert min(d1.compute().item(), d2.compute().item()) < expected < max(d1.compute().item(), d2.compute().item())
    plain.update(image, [s1, s1], weights=[1, 1])  # a blend of one style with itself is that style
    assert plain.compute().item() == pytest.approx(d1.compute().item(), rel=1e-5)


def test_large_images_are_scored_by_tiles_with_the_same_result():
    """Above SCORE_TILE px the statistics are summed tile by tile (80 px margins, 16 px grid): the Grams, the
    masked Grams and the content sums equal the whole image's, edges that are not multiples of 16 included."""
    torch.manual_seed(0)
    image, content = torch.rand(2, 3, 213, 301), torch.rand(1, 3, 213, 301)
    mask = torch.zeros(1, 1, 213, 301)
    mask[..., 40:170, 90:260] = 1.0
    assert len(scoring_plan(213, 301, 192)) > 4 and len(scoring_plan(213, 301)) == 1
    whole = image_statistics(image, [mask], content)
    tiled = image_statistics(image, [mask], content, tile_size=192)
    for name in STYLE_LAYERS:
        assert torch.allclose(tiled.grams[name], whole.grams[name], rtol=1e-4, atol=1e-7)
        assert torch.allclose(tiled.masked_grams[0][name], whole.masked_grams[0][name], rtol=1e-4, atol=1e-7)
    assert torch.allclose(tiled.content_error, whole.content_error, rtol=1e-5)
    assert tiled.content_norm.item() == pytest.approx(whole.content_norm.item(), rel=1e-5)
    # and the whole-image statistics are the hand definitions on the whole feature maps
    f = features(image)
    assert torch.allclose(whole.grams["relu3_1"], gram(f["relu3_1"]), rtol=1e-4, atol=1e-7)
    assert torch.allclose(content_distance_from(whole), content_distance_of(f, features(content)), rtol=1e-5)
    # a margin too small to be exact would show: cutting the image into halves without margins differs
    halves = image_statistics(image[..., :, :160], content=content[..., :, :160]).content_error + image_statistics(
        image[..., :, 160:], content=content[..., :, 160:]).content_error
    assert not torch.allclose(halves, whole.content_error, rtol=1e-3)


def test_ssim_by_tiles_is_torchmetrics_ssim():
    torch.manual_seed(1)
    preds, target = torch.rand(2, 3, 70, 93), torch.rand(1, 3, 70, 93)
    target = (0.5 * target + 0.5 * preds[:1]).clamp(0, 1)  # similar images: SSIM well away from 0
    whole = SSIM(reduction="none")(preds, target.expand_as(preds))
    assert ssim_by_tiles(preds, target).tolist() == pytest.approx(whole.tolist(), rel=1e-5)
    tiled = ssim_by_tiles(preds, target, tile_size=24)  # 4 × 6 tiles, each owning at least 14 px
    assert tiled.tolist() == pytest.approx(whole.tolist(), rel=1e-5)


# -- scoring files -----------------------------------------------------------------------------------


def test_bicubic_resize_to_the_long_edge_rounds_the_short_one():
    image = load_bicubic(CONTENT, "content", long_edge=100)
    w, h = Image.open(CONTENT).size
    assert image.shape[-1] == 100 and image.shape[-2] == round(h * 100 / w)


def test_score_of_the_content_itself_is_zero_content_distance(tmp_path):
    row = score_file(CONTENT, CONTENT, [STYLE], size=64)
    assert row["content_distance"] == pytest.approx(0.0, abs=1e-4) and row["ssim"] == pytest.approx(1.0, abs=1e-3)
    assert row["style_distance"] > 0.1 and (row["width"], row["height"]) == (64, 48)


def test_score_command_prints_one_line_or_json(tmp_path, capsys):
    main(["score", str(CONTENT), "--content", str(CONTENT), "--style", str(STYLE), "--size", "64"])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{CONTENT} (64x48): style ") and "content 0" in line and "SSIM 1.000" in line
    assert " (relu1_1 … relu5_1: " in line  # each layer's distance beside the aggregate
    main(["score", str(STYLE), "--content", str(CONTENT), "--style", str(STYLE), "--size", "48", "--json"])
    row = json.loads(capsys.readouterr().out)
    assert row["style_distance"] < 1e-3 and set(row) >= {"style_distance", "content_distance", "ssim", "width", "height"}


def test_score_reports_each_layer_and_their_geometric_mean():
    row = score_file(CONTENT, CONTENT, [STYLE], size=64)
    layers = [row[f"style_{name}"] for name in STYLE_LAYERS]
    # each layer's value is the metric's for that layer, computed independently on the same resized images
    output = load_bicubic(CONTENT, "output", long_edge=64)
    style = load_bicubic(STYLE, "style", long_edge=64)
    for name, value in zip(STYLE_LAYERS, layers):
        metric = StyleDistance(layer=name)
        metric.update(output, style)
        assert value == pytest.approx(metric.compute().item(), rel=1e-4)
    product = 1.0
    for value in layers:
        product *= value
    assert row["style_distance"] == pytest.approx(product ** (1 / 5), rel=1e-5)
    assert row["style_distance_mean"] == pytest.approx(sum(layers) / 5, rel=1e-5)
    assert row["style_distance"] < row["style_distance_mean"]  # unequal layers: geometric < arithmetic


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["missing.png"], 1, "output image 'missing.png' does not exist"),
        (["NOTIMAGE"], 1, "is not an image file Pillow can read"),
        (["EMPTY"], 1, "is an empty file"),
        ([str(CONTENT), "--size", "8"], 2, "--size must be at least 16"),
        ([str(CONTENT), "--masks", "a.png", "b.png"], 2, "2 masks for 1 style images"),
    ],
)
def test_score_bad_input_is_one_line(tmp_path, capsys, args, code, message):
    (tmp_path / "not_image.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    args = [{"NOTIMAGE": str(tmp_path / "not_image.png"), "EMPTY": str(tmp_path / "empty.png")}.get(a, a) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["score", *args, "--content", str(CONTENT), "--style", str(STYLE)])
    assert exit_info.value.code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_score_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(CONTENT)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["nst-lightning: error: score: the following arguments are required: --content, --style"]


def test_a_run_tensor_scores_as_its_png(tmp_path):
    from nst_lightning.image.io import save_png

    image = torch.rand(1, 3, 48, 64)
    save_png(image, tmp_path / "x.png")
    from_tensor = score_tensor(image, CONTENT, [STYLE])[0]
    from_file = score_file(tmp_path / "x.png", CONTENT, [STYLE])
    for key in ("style_distance", "content_distance", "ssim"):
        assert from_file[key] == pytest.approx(from_tensor[key], rel=1e-6)


# -- a run reports its quality -----------------------------------------------------------------------


def test_fit_reports_quality_in_the_final_line_the_png_and_the_logger(tmp_path, capsys):
    out = tmp_path / "out.png"
    main(["fit", "--config", str(DEFAULT), "--data.size", "64", "--trainer.max_steps", "6",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "CSVLogger",
          "--trainer.logger.save_dir", str(tmp_path), "--trainer.enable_checkpointing", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--score_every", "3", "--output", str(out)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"Stylized image written to {out} (style ") and "content " in last and "SSIM " in last
    with Image.open(out) as png:
        text = png.text
    assert float(text["nst-lightning:style_distance"]) > 0 and float(text["nst-lightning:content_distance"]) > 0
    row = score_file(out, CONTENT, [STYLE])  # the metadata is what `score` says about the file
    assert float(text["nst-lightning:style_distance"]) == pytest.approx(row["style_distance"], rel=1e-4)
    for name in STYLE_LAYERS:  # each layer's distance in the PNG, the logs and the final line
        assert float(text[f"nst-lightning:style_{name}"]) == pytest.approx(row[f"style_{name}"], rel=1e-4)
    assert f"(relu1_1 … relu5_1: {row['style_relu1_1']:.3g} " in last
    metrics = (next(Path(tmp_path).rglob("metrics.csv"))).read_text()
    assert "metric/style_distance" in metrics and "metric/content_distance" in metrics and "metric/ssim" in metrics
    assert all(f"metric/style/{name}" in metrics for name in STYLE_LAYERS) and "metric/style_distance_mean" in metrics
    rows = [r for r in csv.DictReader(metrics.splitlines()) if r.get("metric/style_distance")]
    assert len(rows) >= 2  # every 3 steps, and at the end
