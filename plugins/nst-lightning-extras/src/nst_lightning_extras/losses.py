"""Two style losses that compare feature distributions instead of Gram matrices.

``WassersteinStyleLoss`` fits a Gaussian (mean and covariance) to each style
layer's features and measures the Wasserstein-2 distance between the image's
Gaussian and the style's, as in crowsonkb's style-transfer-pytorch.
``HistogramStyleLoss`` matches each channel's histogram (Risser et al. 2017):
the exact 1-D Wasserstein-2 distance per channel, computed by sorting.

Both follow the nst-lightning loss contract: targets are computed once in
``set_targets``, every statistic and loss is computed in float32 (also under
autocast), and ``forward`` returns the weighted loss. ``WassersteinStyleLoss`` is
also *tileable* and *batchable*: it depends on the image only through sums over
feature positions (the features' sum, their Gram sum, the count), so it
declares them in ``statistics``, computes its loss from their totals in
``loss_from_statistics``, and builds its targets from the style images' own
``style_statistics``; the run then tiles it at any image and style size, and a
batched sweep gives each image its own weight. The plugin guide walks through it.
With ``normalize: true`` (the default) each layer's loss is divided by the
style's distance from all-zero features, so that it is a relative error that
does not depend on a backbone's activation scale or on the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nst_lightning.plugin import (
    DEFAULT_STYLE_LAYERS,
    ConfigValueError,
    LossTerm,
    Targets,
    Window,
    check_layer_weights,
    float32_only,
    gram_sum,
    psd_matrix_power,
)

# -- Wasserstein-2 between Gaussians ---------------------------------------------------------------


def covariance(mean: Tensor, second_moment: Tensor) -> Tensor:
    return second_moment - mean.unsqueeze(-1) * mean.unsqueeze(-2)


def trace(matrix: Tensor) -> Tensor:
    return matrix.diagonal(dim1=-2, dim2=-1).sum(-1)


def wasserstein2_gaussians(
    mean: Tensor, cov: Tensor, target_mean: Tensor, target_cov_sqrt: Tensor, eps: float = 0.0
) -> Tensor:
    """Squared Wasserstein-2 distance between N(mean, cov) and N(target_mean, target_cov):

    ``|m - m_t|² + tr(C) + tr(C_t) - 2 tr((C_t^½ C C_t^½)^½)``

    ``target_cov_sqrt`` is ``C_t^½``. The trace of the matrix square root is the sum of the square
    roots of the eigenvalues of ``C_t^½ C C_t^½``, clamped at ``eps²`` so that the gradient stays
    finite. Batched over leading dimensions.
    """
    middle = target_cov_sqrt @ cov @ target_cov_sqrt
    middle = (middle + middle.transpose(-2, -1)) / 2  # symmetric up to rounding; eigvalsh reads one triangle
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp_min(eps * eps).sqrt().sum(-1)
    target_trace = target_cov_sqrt.pow(2).sum((-2, -1))  # tr(C_t) = ||C_t^½||_F²
    return (mean - target_mean).pow(2).sum(-1) + trace(cov) + target_trace - 2 * trace_sqrt


class WassersteinStyleLoss(LossTerm):
    """Wasserstein-2 style loss: the distance between Gaussians fitted to the image's and the style's features.

    For each layer the features' mean ``m`` and covariance ``C`` over positions are compared with the
    style's ``m_t``, ``C_t``: ``|m - m_t|² + tr(C + C_t - 2 (C_t^½ C C_t^½)^½)``. Where the Gram
    matrix only matches second raw moments, this matches the mean and the covariance, and the square
    root makes it a distance in the units of the features. Several style images blend through their
    moments (a mixture of the styles).

    Args:
        weight: the term's weight.
        layers: the backbone layers to compare.
        layer_weights: one weight per layer; default equal weights that sum to 1
            (crowsonkb's style-transfer-pytorch uses 256:64:16:4:1 for relu1_1 ... relu5_1).
        eps: regularization, relative to the target's mean variance: ``eps · tr(C_t)/C`` is added to
            the diagonal of both covariances, which keeps the square roots' gradients finite.
        normalize: divide each layer's squared distance by ``|m_t|² + tr(C_t)``, the style's distance
            from all-zero features, so that it is a relative error.
    """

    # Tileable: the loss depends on the image only through the sums of ``statistics``. Batchable: the loss
    # is one value per image, weighted through ``LossTerm.weighted``.
    tileable = True
    supports_sample_weights = True
    reads_content = False

    def __init__(
        self,
        weight: float = 5.0,
        layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        layer_weights: Sequence[float] | None = None,
        eps: float = 1e-4,
        normalize: bool = True,
    ) -> None:
        super().__init__(weight, layers)
        self.layer_weights = check_layer_weights(type(self).__name__, self.layers, layer_weights)
        if not eps >= 0:
            raise ConfigValueError(f"WassersteinStyleLoss: eps must be >= 0, not {eps}")
        self.eps = float(eps)
        self.normalize = normalize

    def statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """Per layer ``i``, over the positions ``window`` owns: the sum ``sum_i`` (N×C) and Gram sum ``gram_sum_i``
        (N×C×C) of the features minus the style's mean, and the number of positions ``count_i``. The mean and
        covariance, hence the Gaussian, follow from their totals over all windows. Centring on the style's mean
        keeps ``cov = E[xxᵀ] − m mᵀ`` from cancelling. They are float64: the trace of the matrix square root
        is ill-conditioned where the covariances are nearly singular (ReLU features), so float32 sums would
        let the order of summation (tiles, batches) move the loss by percents."""
        stats = {}
        for i, name in enumerate(self.layers):
            owned = window.owned(features, name).double() - getattr(self, f"mean_{i}")[..., None, None]
            stats[f"sum_{i}"] = owned.flatten(2).sum(-1)
            stats[f"gram_sum_{i}"] = gram_sum(owned, dtype=torch.float64)
            stats[f"count_{i}"] = owned.new_full((), float(owned.shape[-2] * owned.shape[-1]))
        return stats

    def style_statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """The same sums of a style image, uncentred (its mean is what is being found): its Gaussian is the target."""
        stats = {}
        for i, name in enumerate(self.layers):
            owned = window.owned(features, name).double()
            stats[f"sum_{i}"] = owned.flatten(2).sum(-1)
            stats[f"gram_sum_{i}"] = gram_sum(owned, dtype=torch.float64)
            stats[f"count_{i}"] = owned.new_full((), float(owned.shape[-2] * owned.shape[-1]))
        return stats

    def set_targets(self, targets: Targets) -> None:
        if not targets.styles and not targets.style_statistics:
            raise ValueError("WassersteinStyleLoss needs at least one style image")
        statistics = self.style_statistics_of(targets)
        self.eps_values: list[float] = []
        for i in range(len(self.layers)):
            # Raw moments blend linearly: the moments of the mixture of the style images (float64 here).
            mean = sum(b * s[f"sum_{i}"] / s[f"count_{i}"] for b, s in zip(targets.style_weights, statistics))
            second = sum(b * s[f"gram_sum_{i}"] / s[f"count_{i}"] for b, s in zip(targets.style_weights, statistics))
            cov = covariance(mean, second)
            channels = cov.shape[-1]
            eps = self.eps * trace(cov).clamp_min(0) / channels
            eye = torch.eye(channels, device=cov.device, dtype=cov.dtype)
            total_square = trace(second)  # |m_t|² + tr(C_t): the distance from the style to all-zero features
            self.register_buffer(f"mean_{i}", mean, persistent=False)
            cov_sqrt = psd_matrix_power(cov + eps[..., None, None] * eye, 0.5)
            self.register_buffer(f"cov_sqrt_{i}", cov_sqrt, persistent=False)
            self.register_buffer(f"eps_{i}", eps, persistent=False)
            self.eps_values.append(float(eps.max()))
            scale = 1.0 / total_square.clamp_min(1e-12) if self.normalize else torch.ones_like(total_square)
            self.register_buffer(f"scale_{i}", scale, persistent=False)

    def loss_from_statistics(self, statistics: dict[str, Tensor]) -> Tensor:
        total = 0.0
        for i, w in enumerate(self.layer_weights):
            count = statistics[f"count_{i}"]
            shift, centred_second = statistics[f"sum_{i}"] / count, statistics[f"gram_sum_{i}"] / count
            target_mean = getattr(self, f"mean_{i}")
            eps = getattr(self, f"eps_{i}")
            eye = torch.eye(shift.shape[-1], device=shift.device, dtype=shift.dtype)
            cov = covariance(shift, centred_second) + eps[..., None, None] * eye
            # |m − m_t|² is |shift|²: the statistics were centred on m_t.
            distance = wasserstein2_gaussians(
                target_mean + shift, cov, target_mean, getattr(self, f"cov_sqrt_{i}"), self.eps_values[i]
            )
            total = total + w * getattr(self, f"scale_{i}") * distance
        return self.weighted(total.float())

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        return self.loss_by_windows(features, image)


# -- histogram matching ----------------------------------------------------------------------------


def resample_sorted(values: Tensor, count: int) -> Tensor:
    """Read ``count`` evenly spaced quantiles off sorted ``values`` (…×K), with linear interpolation.

    Quantile ``j`` sits at ``(j + ½)/count`` of the distribution, i.e. at fractional index
    ``(j + ½)·K/count − ½`` of the K sorted values (clamped to the ends). With ``count == K`` this
    returns ``values`` unchanged.
    """
    k = values.shape[-1]
    position = ((torch.arange(count, device=values.device, dtype=torch.float64) + 0.5) * k / count - 0.5)
    position = position.clamp(0, k - 1)
    low = position.floor().long()
    high = (low + 1).clamp_max(k - 1)
    frac = (position - low).to(values.dtype)
    return values[..., low] * (1 - frac) + values[..., high] * frac


def sorted_channels(features: Tensor) -> Tensor:
    """N×C×H×W features → N×C×(H·W), each channel's values sorted, in float32."""
    n, c, h, w = features.shape
    return features.float().reshape(n, c, h * w).sort(-1).values


class HistogramStyleLoss(LossTerm):
    """Histogram loss (Risser, Wilmot & Barnes 2017): each channel's values matched to the style's histogram.

    For every layer and channel, the image's values are sorted and compared with the style's values at
    the same quantiles: ``mean((sort(F) − Q_t)²)``, the squared 1-D Wasserstein-2 distance between the
    two histograms, exact (no binning). This equals the mean squared distance of the features to their
    histogram-matched remapping, Risser's formulation. It is blind to where values occur, so it is
    zero for any rearrangement of the style's features. Several style images blend through their
    quantile functions (the 1-D Wasserstein barycentre).

    Args:
        weight: the term's weight.
        layers: the backbone layers to compare.
        layer_weights: one weight per layer; default equal weights that sum to 1.
        normalize: divide each layer's loss by the mean square of the style's features.
    """

    def __init__(
        self,
        weight: float = 3.0,
        layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        layer_weights: Sequence[float] | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(weight, layers)
        self.layer_weights = check_layer_weights(type(self).__name__, self.layers, layer_weights)
        self.normalize = normalize

    def set_targets(self, targets: Targets) -> None:
        if not targets.styles:
            raise ValueError("HistogramStyleLoss needs at least one style image")
        for i, name in enumerate(self.layers):
            values = [sorted_channels(style[name][:1])[0] for style in targets.styles]
            count = max(v.shape[-1] for v in values)
            quantiles = sum(b * resample_sorted(v, count) for b, v in zip(targets.style_weights, values))
            mean_square = sum(b * v.pow(2).mean() for b, v in zip(targets.style_weights, values))
            self.register_buffer(f"quantiles_{i}", quantiles, persistent=False)
            scale = 1.0 / mean_square.clamp_min(1e-12) if self.normalize else torch.ones_like(mean_square)
            self.register_buffer(f"scale_{i}", scale, persistent=False)

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            total = image.new_zeros(image.shape[0], dtype=torch.float32)
            for i, (name, w) in enumerate(zip(self.layers, self.layer_weights)):
                values = sorted_channels(features[name])
                target = resample_sorted(getattr(self, f"quantiles_{i}"), values.shape[-1])
                distance = (values - target).pow(2).mean((-2, -1))
                total = total + w * getattr(self, f"scale_{i}") * distance
            return self.weight * total
