"""Candidate defaults for the 256 px target (≤ 60 full-size-equivalent iterations within 5 % of style 0.0438 /
content 0.501 on Tübingen × The Starry Night): each candidate's distances every 10 steps at the final size,
with its pixel-weighted FSE (a coarse step costs its pixels over the final size's).

    python benchmarks/schedule_search.py single            # the default schedule, 100 steps
    python benchmarks/schedule_search.py ms_d_40_30_40     # multi-scale 128/181/256 px, 40 + 30 coarse steps, then
                                                           # 40 at 256 px; d: the content's detail added back on
                                                           # upsampling (n: plain bicubic upsampling)
    python benchmarks/schedule_search.py hist10            # L-BFGS history 10 instead of 100
    python benchmarks/schedule_search.py noclamp           # the image not clamped to [0, 1] between steps
    python benchmarks/schedule_search.py fixclamp          # clamped, with L-BFGS's step corrected for the clamp
    python benchmarks/schedule_search.py wolfe             # strong-Wolfe line search

Rows print as (step, FSE by pixels, style distance, content distance); README's Quality section has them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from nst_lightning.callbacks.multiscale import MultiScale
from nst_lightning.cli.fit import build_cli
from nst_lightning.model.style_transfer import StyleTransfer
from nst_lightning.quality.scoring import score_tensor

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("NST_IMAGES", ROOT.parent / "shared" / "images"))


class DetailMultiScale(MultiScale):
    """MultiScale that, on upsampling, adds back the content detail the coarse scale could not hold:
    image = upsample(coarse image) + content at the new size - upsample(content at the coarse size)."""

    def __init__(self, *args, detail: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.detail = detail

    @torch.no_grad()
    def _enter_scale(self, trainer, pl_module, k) -> None:
        old = getattr(pl_module, "content_image", None)
        old = None if old is None else old.clone()
        super()._enter_scale(trainer, pl_module, k)
        new = pl_module.content_image
        if self.detail and old is not None and old.shape[-2:] != new.shape[-2:]:
            up = F.interpolate(old, size=new.shape[-2:], mode=self.mode, align_corners=False)
            pl_module.image.data = (pl_module.image.data + new - up).clamp(0, 1)


class Scores(pl.Callback):
    def __init__(self, content: Path, style: Path, every: int = 10) -> None:
        self.content, self.style, self.every, self.cost, self.final = content, style, every, 0.0, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        h, w = pl_module.image.shape[-2:]
        self.cost += h * w / (self.final[0] * self.final[1])
        step = trainer.global_step
        if (h, w) == self.final and (step % self.every == 0 or step >= trainer.max_steps):
            row = score_tensor(pl_module.output_image(), self.content, [self.style])[0]
            print((step, round(self.cost, 1), round(row["style_distance"], 4), round(row["content_distance"], 3)), flush=True)


def clamp_corrected_step(self, *args, **kwargs) -> None:
    """Clamp, then tell L-BFGS the step it really took (its next secant pair uses that step)."""
    pl.LightningModule.optimizer_step(self, *args, **kwargs)
    optimizer = self.trainer.optimizers[0]
    state = optimizer.state[optimizer._params[0]]
    moved = self.image.detach().clone()
    with torch.no_grad():
        self.image.clamp_(0, 1)
    if state.get("t"):
        state["d"] = state["d"] + (self.image.detach() - moved).flatten() / state["t"]


def run(name: str, steps: int, scales: MultiScale | None = None, extra: tuple[str, ...] = ()) -> None:
    content, style = IMAGES / "tubingen.jpg", IMAGES / "starry_night.jpg"
    argv = ["--config", str(ROOT / "configs" / "single_scale.yaml"), "--data.size", "256", "--data.content", str(content),
            "--data.style", str(style), "--trainer.max_steps", str(steps), "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--output", f"outputs/schedule_{name}.png", "--overwrite", "true", *extra]
    cli = build_cli(argv, run=False)
    if scales is not None:
        cli.trainer.callbacks.insert(0, scales)
    scores = Scores(content, style)
    cli.trainer.callbacks.append(scores)
    cli.datamodule.setup("fit")
    scores.final = tuple(cli.datamodule.content_image.shape[-2:])
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    print(name, "seconds", round(time.perf_counter() - start, 1))


def main() -> None:
    which = sys.argv[1]
    if which == "single":
        run(which, 100)
    elif which == "hist10":
        run(which, 80, extra=("--model.optimizer.init_args.history_size", "10"))
    elif which == "wolfe":
        run(which, 60, extra=("--model.optimizer.init_args.line_search_fn", "strong_wolfe"))
    elif which == "noclamp":
        StyleTransfer.optimizer_step = pl.LightningModule.optimizer_step
        run(which, 80)
    elif which == "fixclamp":
        StyleTransfer.optimizer_step = clamp_corrected_step
        run(which, 80)
    elif which.startswith("ms_"):
        _, detail, coarse1, coarse2, final = which.split("_")
        scales = DetailMultiScale(3, steps_per_scale=[int(coarse1), int(coarse2)], detail=detail == "d")
        run(which, int(coarse1) + int(coarse2) + int(final), scales)
    else:
        raise SystemExit(f"unknown candidate {which!r}")


if __name__ == "__main__":
    main()
