"""Colour control: luminance-only transfer keeps the content's chroma; style images matched to its colours."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.cli.fit import build_cli
from nst_lightning.image.colour import (
    keep_chroma,
    match_colour,
    match_covariance,
    match_histogram,
    rgb_to_yiq,
    yiq_to_rgb,
)
from nst_lightning.image.io import load_image

from .conftest import CONTENT, STYLE
from .helpers import read_png, tiny


def test_yiq_round_trip_and_known_values():
    rgb = torch.rand(2, 3, 5, 7)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, atol=1e-5)
    white, red = torch.ones(1, 3, 1, 1), torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    assert torch.allclose(rgb_to_yiq(white).flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)  # grey has no chroma
    assert torch.allclose(rgb_to_yiq(red).flatten(), torch.tensor([0.299, 0.5959, 0.2115]), atol=1e-6)


def test_keep_chroma_takes_luminance_from_image_and_chroma_from_content():
    generator = torch.Generator().manual_seed(0)
    # Colours near mid-grey, so that the recombined colour stays inside the RGB cube (nothing clamped).
    content, image = (torch.rand(2, 1, 3, 8, 8, generator=generator) * 0.2 + 0.4).unbind(0)
    out = rgb_to_yiq(keep_chroma(image, content))
    assert torch.allclose(out[:, 0], rgb_to_yiq(image)[:, 0], atol=1e-5)
    assert torch.allclose(out[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-5)


def _stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = image.double().reshape(3, -1)
    return flat.mean(1), torch.cov(flat, correction=0)


def test_covariance_matching_gives_the_style_the_contents_mean_and_covariance():
    content, style = load_image(CONTENT, 96), load_image(STYLE, 96)
    matched = match_covariance(style, content)
    (mu_c, cov_c), (mu_s, cov_s), (mu_m, cov_m) = _stats(content), _stats(style), _stats(matched)
    # Measured at 96 px: 0.067 and 0.027 apart before, 2.4e-5 and 2.8e-5 after (clamping to [0, 1] moves few pixels).
    assert (mu_s - mu_c).abs().max() > 0.05 and (cov_s - cov_c).abs().max() > 0.02
    assert (mu_m - mu_c).abs().max() < 1e-3
    assert (cov_m - cov_c).abs().max() < 1e-3


def test_histogram_matching_gives_each_channel_the_contents_distribution():
    content, style = load_image(CONTENT, 96), load_image(STYLE, 96)
    matched = match_histogram(style, content)
    q = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    for c in range(3):
        want = torch.quantile(content[0, c].double().flatten(), q)
        before = (torch.quantile(style[0, c].double().flatten(), q) - want).abs().max()
        after = (torch.quantile(matched[0, c].double().flatten(), q) - want).abs().max()
        # Measured at 96 px: 0.11-0.14 before, under 0.005 after.
        assert before > 0.1 and after < 0.01, (c, before, after)


def test_match_colour_none_is_identity_and_unknown_is_an_error():
    style = torch.rand(1, 3, 4, 4)
    assert match_colour(style, style, "none") is style
    with pytest.raises(ValueError, match="histogram"):
        match_colour(style, style, "lab")


def test_style_colour_is_applied_when_the_data_loads(tmp_path):
    cli = build_cli(tiny(tmp_path, "--data.style_colour", "covariance")[1:], run=False)
    cli.datamodule.setup("fit")
    mu_c, _ = _stats(cli.datamodule.sets[0].content)
    mu_s, _ = _stats(cli.datamodule.sets[0].styles[0])
    assert (mu_s - mu_c).abs().max() < 1e-3


def chroma_error(image: torch.Tensor, content: torch.Tensor) -> float:
    """Mean absolute difference of the I and Q channels (YIQ; I spans about ±0.6, Q about ±0.52)."""
    return (rgb_to_yiq(image)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean().item()


def test_preserve_colour_keeps_the_contents_chroma(tmp_path):
    # One run: the written PNG has the preserved colours, the optimized image itself does not.
    cli = build_cli(tiny(tmp_path, "--model.preserve_colour", "true", "--data.size", "64", steps=20))
    content = load_image(CONTENT, 64)
    written = read_png(tmp_path / "out.png")
    stylized = cli.model.image.detach()
    # Measured at 64 px after 20 steps: 0.0002 with (8-bit rounding, clamping), 0.042 without.
    assert chroma_error(written, content) < 0.005
    assert chroma_error(stylized, content) > 0.02
    # Its luminance is the stylized image's.
    assert (rgb_to_yiq(written)[:, 0] - rgb_to_yiq(stylized)[:, 0]).abs().mean() < 0.01
