"""Seams: the mean gradient magnitude of a stylized image along the borders of the tiles it was made with,
against its mean elsewhere (README: Large images).

    python benchmarks/seams.py outputs/large_2048.png --tile-size 816

The tiles are those ``plan_tiles`` gives the image's size with VGG19's default layers; the border band is
the pixel pairs that straddle a boundary between two tiles' owned blocks (``--band`` px each side).
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.tiling import plan_tiles, tile_geometry

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--tile-size", type=int, required=True)
    parser.add_argument("--band", type=int, default=1)
    args = parser.parse_args()
    pixels = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float64) / 255
    h, w, _ = pixels.shape
    plan = plan_tiles(h, w, args.tile_size, tile_geometry(VGG19(weights="none"), LAYERS))
    row_cuts = sorted({t.own_rows[0] for t in plan.tiles} - {0})
    col_cuts = sorted({t.own_cols[0] for t in plan.tiles} - {0})
    dx = np.abs(np.diff(pixels, axis=1)).sum(-1)  # (h, w-1): pair (x-1, x) at index x-1
    dy = np.abs(np.diff(pixels, axis=0)).sum(-1)
    border_x = np.zeros_like(dx, dtype=bool)
    border_y = np.zeros_like(dy, dtype=bool)
    for c in col_cuts:
        border_x[:, max(0, c - args.band) : c + args.band - 1] = True  # dx[:, c - 1] is the pair (c - 1, c)
    for r in row_cuts:
        border_y[max(0, r - args.band) : r + args.band - 1, :] = True
    across = np.concatenate([dx[border_x], dy[border_y]])
    elsewhere = np.concatenate([dx[~border_x], dy[~border_y]])
    print(f"{w}x{h} px, {len(plan)} tiles (cuts at rows {row_cuts}, columns {col_cuts})")
    print(f"mean gradient across tile borders {across.mean():.5f}, elsewhere {elsewhere.mean():.5f}, "
          f"ratio {across.mean() / elsewhere.mean():.3f}")
    # The same statistic for a single column pair at every other x: how much it varies with the content alone.
    per_column = dx.mean(0) / dx.mean()
    cut_columns = [c - 1 for c in col_cuts]
    others = np.delete(per_column, cut_columns)
    low, high = np.percentile(others, [5, 95])
    print(f"column pairs at the cuts: {np.round(per_column[cut_columns], 3).tolist()} of the mean; "
          f"all other columns: 5th-95th percentile {low:.3f}-{high:.3f}")


if __name__ == "__main__":
    main()
