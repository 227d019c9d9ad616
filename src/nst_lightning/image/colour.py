"""Colour control: luminance-only transfer (keep the content's chroma) and colour matching of style images.

Two independent tools (Gatys et al. 2017, *Controlling Perceptual Factors in Neural Style Transfer*):

- :func:`keep_chroma` recombines the output's luminance with the content's chroma in YIQ, as
  jcjohnson/neural-style's ``-original_colors 1``. ``model.preserve_colour`` applies it to every image written.
- :func:`match_colour` recolours a style image so its colour statistics match the content's before transfer:
  ``histogram`` (each RGB channel's histogram) or ``covariance`` (mean and covariance in RGB).
  ``data.style_colour`` applies it to every style image.

All images are RGB in [0, 1], N×3×H×W.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nst_lightning.linalg import psd_matrix_power

STYLE_COLOUR_CHOICES = ("none", "histogram", "covariance")


# NTSC YIQ: Y is the luminance, I and Q the chroma.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]], dtype=torch.float64
)


_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image.device, torch.float32), image.float())


def rgb_to_yiq(image: Tensor) -> Tensor:
    """N×3×H×W RGB to YIQ (channel 0 is the luminance Y, channels 1-2 the chroma I and Q)."""
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    """N×3×H×W YIQ back to RGB (not clamped)."""
    return _apply(_YIQ_TO_RGB, image)


def keep_chroma(image: Tensor, content: Tensor) -> Tensor:
    """``image``'s luminance with ``content``'s chroma (YIQ), clamped to [0, 1]. Same size required."""
    if image.shape[-2:] != content.shape[-2:]:
        raise ValueError(f"keep_chroma: image {tuple(image.shape)} and content {tuple(content.shape)} differ in size")
    yiq = rgb_to_yiq(content).expand(image.shape[0], -1, -1, -1).clone()
    yiq[:, :1] = rgb_to_yiq(image)[:, :1]
    return yiq_to_rgb(yiq).clamp(0, 1).to(image.dtype)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation as ``numpy.interp`` (``xp`` increasing)."""
    i = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def _quantiles(values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unique values, the inverse index, and each value's position in the cumulative distribution."""
    unique, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    cdf = counts.cumsum(0).double()
    return unique.double(), inverse, (cdf - counts.double() / 2) / values.numel()


def match_histogram(image: Tensor, reference: Tensor) -> Tensor:
    """Each RGB channel of ``image`` remapped so its histogram matches ``reference``'s (as scikit-image)."""
    out = torch.empty_like(image, dtype=torch.float32)
    for n in range(image.shape[0]):
        for c in range(3):
            src_values, inverse, src_q = _quantiles(image[n, c].reshape(-1).float())
            ref_values, _, ref_q = _quantiles(reference[min(n, reference.shape[0] - 1), c].reshape(-1).float())
            out[n, c] = _interp(src_q, ref_q, ref_values)[inverse].reshape(image.shape[-2:]).float()
    return out.clamp(0, 1)


def _mean_cov(image: Tensor) -> tuple[Tensor, Tensor]:
    flat = image.double().reshape(3, -1)
    mean = flat.mean(1, keepdim=True)
    centred = flat - mean
    cov = centred @ centred.T / flat.shape[1] + 1e-5 * torch.eye(3, dtype=torch.float64, device=image.device)
    return mean, cov


def match_covariance(image: Tensor, reference: Tensor) -> Tensor:
    """An affine map of ``image``'s RGB values giving it ``reference``'s mean and covariance.

    ``x' = Σ_r^½ Σ_i^-½ (x - μ_i) + μ_r`` with symmetric matrix square roots (Gatys et al. 2017, eq. 5).
    """
    out = torch.empty_like(image, dtype=torch.float32)
    for n in range(image.shape[0]):
        mu_i, cov_i = _mean_cov(image[n])
        mu_r, cov_r = _mean_cov(reference[min(n, reference.shape[0] - 1)])
        a = psd_matrix_power(cov_r, 0.5, 1e-12) @ psd_matrix_power(cov_i, -0.5, 1e-12)
        flat = a @ (image[n].double().reshape(3, -1) - mu_i) + mu_r
        out[n] = flat.reshape(image.shape[1:]).float()
    return out.clamp(0, 1)


def match_colour(image: Tensor, reference: Tensor, method: str) -> Tensor:
    """``image`` recoloured to ``reference`` by ``method``: ``none``, ``histogram`` or ``covariance``."""
    if method == "none":
        return image
    if method == "histogram":
        return match_histogram(image, reference)
    if method == "covariance":
        return match_covariance(image, reference)
    raise ValueError(f"style colour matching must be one of {', '.join(STYLE_COLOUR_CHOICES)}, not {method!r}")
