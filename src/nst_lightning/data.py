"""The data module: loads the content and style images once, and yields one empty batch per step."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nst_lightning.errors import ConfigValueError
from nst_lightning.image.colour import STYLE_COLOUR_CHOICES, match_colour
from nst_lightning.image.image_set import ImageSet
from nst_lightning.image.io import check_image_file, load_image, shape_at
from nst_lightning.image.masks import load_mask

# The style images' long edge relative to the output's: beyond 10× a style image is larger than any print
# (and its targets would cost more memory than the run).
MAX_STYLE_SCALE = 10.0


class _Steps(Dataset):
    """``length`` empty items: the image being optimized is the model's parameter, not data."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tensor:
        return torch.zeros(())


class StyleTransferData(pl.LightningDataModule):
    """Content and style images for one style transfer run.

    Args:
        content: the content image file.
        style: one style image file, or a list of them.
        size: the long edge of the output, in pixels.
        style_scale: the style images' long edge relative to ``size`` (0.5 gives finer strokes, 2 coarser ones).
        style_blend_weights: one weight per style image; normalized to sum to 1. Default: equal weights.
        style_colour: recolour each style image to the content's colours before transfer: ``none``,
            ``histogram`` (match each RGB channel's histogram) or ``covariance`` (match the RGB mean and covariance).
        masks: one mask image per style image (white: that style applies); needs ``MaskedGramStyleLoss``.
            Regions that no mask covers keep their content.
    """

    def __init__(
        self,
        content: str,
        style: str | list[str],
        size: int = 256,
        style_scale: float = 1.0,
        style_blend_weights: list[float] | None = None,
        style_colour: str = "none",
        masks: list[str] | None = None,
    ) -> None:
        super().__init__()
        styles = [style] if isinstance(style, str) else list(style)
        if not styles:
            raise ConfigValueError("data.style: give at least one style image")
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise ConfigValueError(f"data.size must be an integer of at least 16 pixels, not {size!r}")
        if not 0 < style_scale <= MAX_STYLE_SCALE:
            raise ConfigValueError(f"data.style_scale must be a number in (0, {MAX_STYLE_SCALE:g}], not {style_scale!r}")
        if style_colour not in STYLE_COLOUR_CHOICES:
            raise ConfigValueError(f"data.style_colour must be one of {', '.join(STYLE_COLOUR_CHOICES)}, not {style_colour!r}")
        masks = list(masks or [])
        if masks and len(masks) != len(styles):
            raise ConfigValueError(f"data.masks has {len(masks)} mask images for {len(styles)} style images; give one per style")
        if masks and style_blend_weights is not None:
            raise ConfigValueError("data.style_blend_weights do not apply with data.masks: each style has its own region")
        if style_blend_weights is None:
            style_blend_weights = [1.0] * len(styles)
        if len(style_blend_weights) != len(styles):
            raise ConfigValueError(
                f"data.style_blend_weights has {len(style_blend_weights)} values for {len(styles)} style images"
            )
        if any(not 0 <= w < float("inf") for w in style_blend_weights) or sum(style_blend_weights) <= 0:
            raise ConfigValueError(f"data.style_blend_weights must be finite numbers >= 0 with a positive sum, "
                                   f"not {list(style_blend_weights)}")
        self.content = content
        self.style = styles
        self.size = size
        self.style_scale = style_scale
        self.style_colour = style_colour
        self.masks = masks
        total = float(sum(style_blend_weights))
        self.style_weights = [float(w) / total for w in style_blend_weights]
        self.sets: list[ImageSet] = []  # at ``size``, once set up

    def load_images(self, size: int) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """The content image with long edge ``size``, the style images (``style_scale`` times that, recoloured
        by ``style_colour``) and the masks (at the content image's size). Multi-scale calls it once per scale."""
        content = load_image(self.content, size, "content image")
        masks = [load_mask(path, tuple(content.shape[-2:])) for path in self.masks]
        return content, self.load_styles(size, content), masks

    def load_styles(self, size: int, content: Tensor) -> list[Tensor]:
        """The style images for an output of long edge ``size``: ``style_scale`` times that, recoloured to
        ``content`` by ``style_colour``."""
        style_edge = max(16, round(size * self.style_scale))
        styles = [load_image(path, style_edge, "style image") for path in self.style]
        return [match_colour(style, content, self.style_colour) for style in styles]

    @property
    def images_per_step(self) -> int:
        """How many images one optimizer step works on (each with its own content): 1."""
        return 1

    def content_shape(self, long_edge: int) -> tuple[int, int]:
        """(height, width) of the content at long edge ``long_edge``, read from the file's header (nothing decoded)."""
        return shape_at(self.content, long_edge)

    def check_inputs(self) -> None:
        """Every input file exists and is an image (headers only): before a run, so that a missing content image
        is the error a user sees, not an output that exists."""
        check_image_file(self.content, "content image")
        for path in self.style:
            check_image_file(path, "style image")
        for path in self.masks:
            check_image_file(path, "mask image")

    def input_files(self) -> list[str]:
        """Every input file of the run, as given: the content, the styles, the masks."""
        return [self.content, *self.style, *self.masks]

    def image_sets(self, size: int) -> list[ImageSet]:
        """The inputs of the run's images at long edge ``size``: one set that every image shares."""
        content, styles, masks = self.load_images(size)
        return [ImageSet(content, styles, list(self.style_weights), masks)]

    @property
    def style_count(self) -> int:
        """Style images over all sets (for the memory estimate)."""
        return len(self.style)

    def setup(self, stage: str | None = None) -> None:
        if not self.sets:
            self.sets = self.image_sets(self.size)

    def train_dataloader(self) -> DataLoader:
        steps = self.trainer.max_steps if self.trainer is not None and self.trainer.max_steps > 0 else 1
        return DataLoader(_Steps(steps), batch_size=None, num_workers=0)


class BatchedData(StyleTransferData):
    """Several runs' inputs optimized as one batch (a batched sweep): image i takes its content, styles, blend
    weights and masks from ``members[i]``. The members must give content images of the same size; settings that
    shape the run (``size``, ``style_scale``) are the first member's.
    """

    def __init__(self, members: list[StyleTransferData]) -> None:
        first = members[0]
        super().__init__(first.content, first.style, first.size, first.style_scale,
                         None if first.masks else first.style_weights, first.style_colour, first.masks)
        self.members = list(members)

    def image_sets(self, size: int) -> list[ImageSet]:
        sets = [s for member in self.members for s in member.image_sets(size)]
        shapes = {tuple(s.content.shape[-2:]) for s in sets}
        if len(shapes) > 1:
            raise ConfigValueError(
                f"the content images of one batch must give the same size at {size} px, not {sorted(shapes)}",
                key="data.content",
            )
        return sets

    @property
    def style_count(self) -> int:
        return sum(len(member.style) for member in self.members)

    @property
    def images_per_step(self) -> int:
        return len(self.members)

    def check_inputs(self) -> None:
        for member in self.members:
            member.check_inputs()

    def input_files(self) -> list[str]:
        return [path for member in self.members for path in member.input_files()]
