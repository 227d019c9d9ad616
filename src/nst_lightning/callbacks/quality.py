"""Every run reports its quality: the distances of :mod:`nst_lightning.quality` at the end of ``fit``.

``QualityReport`` scores the final image(s) against the run's own image files (content, styles with their
blend weights and ``style_scale``, masks), exactly as ``nst-lightning score`` would score the PNG. It logs
``metric/style_distance`` (the geometric mean of the layers), ``metric/style_distance_mean``,
``metric/style/relu1_1`` … ``metric/style/relu5_1``, ``metric/content_distance`` and ``metric/ssim`` through the trainer's logger
(and, with ``every_n_steps``, during the run), hands the numbers to the ``ImageWriter`` for the PNG's
text metadata, and logs the content and style images once, when training starts, and the final image (and the
images at ``image_every`` steps) through the logger: TensorBoard's image tab with ``TensorBoardLogger``,
``log_image`` for loggers that have it.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from nst_lightning.data import BatchedData, StyleTransferData
from nst_lightning.errors import NstLightningError
from nst_lightning.image.io import to_pil
from nst_lightning.model.style_transfer import report_of
from nst_lightning.quality.distances import STYLE_LAYERS
from nst_lightning.quality.scoring import format_score, layer_key, score_tensor
from nst_lightning.video_data import VideoData

# A score's keys and the logger's names for them.
METRIC_KEYS = {
    "style_distance": "metric/style_distance",
    "style_distance_mean": "metric/style_distance_mean",
    **{layer_key(name): f"metric/style/{name}" for name in STYLE_LAYERS},
    "content_distance": "metric/content_distance",
    "ssim": "metric/ssim",
}


def quality_metadata(row: dict[str, Any]) -> dict[str, str]:
    """PNG text chunks for one image's score: ``nst-lightning:style_distance``, ``nst-lightning:style_relu1_1``
    and so on."""
    return {f"nst-lightning:{k}": f"{row[k]:.6g}" for k in METRIC_KEYS if k in row}


def log_image(logger: Any, tag: str, image: Tensor, step: int) -> None:
    """Log the first image of ``image`` through a Lightning logger that can show images (else nothing)."""
    if logger is None:
        return
    experiment = getattr(logger, "experiment", None)
    if hasattr(experiment, "add_image"):  # TensorBoard's SummaryWriter
        experiment.add_image(tag, image[0].detach().float().clamp(0, 1).cpu(), step)
    elif callable(getattr(logger, "log_image", None)):  # W&B, Neptune, Comet, MLflow-style loggers
        logger.log_image(key=tag, images=[to_pil(image)], step=step)


class QualityReport(pl.Callback):
    """Scores the run's result with the style and content distances and SSIM; see the module's docstring.

    Args:
        every_n_steps: also score (and log) every N optimizer steps; 0: only at the end.
        image_every: log the image through the logger every N steps (0: only the final one).
    """

    def __init__(self, every_n_steps: int = 0, image_every: int = 0) -> None:
        self.every_n_steps = every_n_steps
        self.image_every = image_every
        self.results: list[dict[str, Any]] = []

    def score(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[dict[str, Any]]:
        data = trainer.datamodule
        if not isinstance(data, StyleTransferData):
            return []
        image = pl_module.output_image()
        if isinstance(data, BatchedData):  # each image against its own inputs
            return [score_tensor(image[i : i + 1], m.content, m.style, m.style_weights, m.style_scale, m.masks)[0]
                    for i, m in enumerate(data.members)]
        return score_tensor(image, data.content, data.style, data.style_weights, data.style_scale, data.masks)

    def _log(self, trainer: pl.Trainer, rows: list[dict[str, Any]]) -> None:
        if trainer.logger is None or not rows:
            return
        metrics = {key: sum(r[k] for r in rows) / len(rows) for k, key in METRIC_KEYS.items()}
        trainer.logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The run's inputs, once at step 0 (a resumed run has logged them already): ``content`` and ``style/<i>``
        (``content/<k>``, ``style/<k>/<i>`` for a batch whose images each have their own)."""
        if trainer.global_step > 0 or not trainer.is_global_zero or trainer.logger is None:
            return
        if isinstance(trainer.datamodule, VideoData):
            return  # a clip's frames are its content
        sets = pl_module.image_sets
        for k, image_set in enumerate(sets):
            where = f"/{k}" if len(sets) > 1 else ""
            log_image(trainer.logger, f"content{where}", image_set.content, 0)
            for i, style in enumerate(image_set.styles):
                log_image(trainer.logger, f"style{where}/{i}", style, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and trainer.is_global_zero:
            self._log(trainer, self.score(trainer, pl_module))
        if self.image_every and step % self.image_every == 0 and trainer.is_global_zero:
            log_image(trainer.logger, "image", pl_module.output_image(), step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or isinstance(trainer.datamodule, VideoData):
            return  # a clip is scored frame by frame by VideoFrames
        try:
            self.results = self.score(trainer, pl_module)
        except NstLightningError as exc:  # an input file changed under the run: the image is still written
            warnings.warn(f"the result could not be scored: {exc}", stacklevel=1)
            self.results = []
        self._log(trainer, self.results)
        log_image(trainer.logger, "final", pl_module.output_image(), trainer.global_step)
        # The run's report carries the scores to the image writer (it runs after this callback) and the final line.
        report = report_of(pl_module)
        report.quality = list(self.results)
        if self.results:
            report.metadata.update(quality_metadata(self.results[0]))


def run_summary(pl_module: pl.LightningModule) -> str:
    """For the final line: `` (style 0.0438  content 0.501  SSIM 0.463; converged at step 57 (...))``."""
    parts = []
    report = report_of(pl_module)
    if report.quality:
        parts.append(format_score(report.quality[0]))  # the same format as `nst-lightning score`
        if "warping_error" in report.quality[0]:  # a clip's (VideoFrames)
            row = report.quality[0]
            border = f" (where chunks meet {row['border_warping_error']:.4g})" if "border_warping_error" in row else ""
            parts.append(f"warping error {row['warping_error']:.4g}{border}")
    if report.stop_reason:
        parts.append(report.stop_reason)
    return f" ({'; '.join(parts)})" if parts else ""
