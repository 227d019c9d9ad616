"""The contact sheet of a sweep: every point's image in a grid, labelled with the parameters that vary,
its style and content distances and its per-layer style distances (relu1_1 … relu5_1)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from nst_lightning.files import atomic_write
from nst_lightning.quality.scoring import LAYER_KEYS
from nst_lightning.sweep.naming import format_value, short_labels
from nst_lightning.sweep.spec import Sweep

CONTACT_SHEET = "contact_sheet.png"


THUMB = 192


PAD = 8


LINE = 14


BACKGROUND = (255, 255, 255)


MISSING = (200, 200, 200)


TEXT = (0, 0, 0)


def labels(sweep: Sweep, params: dict[str, Any]) -> list[str]:
    """One ``key=value`` line per varying parameter, with short keys."""
    short = short_labels(sweep.varying)
    return [f"{short[k]}={format_value(params.get(k))}" for k in sweep.varying]


def _thumbnail(record: dict[str, Any]) -> Image.Image | None:
    path = Path(record.get("output", ""))
    if record.get("status") != "done" or not path.is_file():
        return None
    with Image.open(path) as image:
        thumb = image.convert("RGB")
    thumb.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return thumb


def write_contact_sheet(sweep: Sweep, records: dict[str, dict[str, Any]]) -> Path | None:
    """Write ``contact_sheet.png`` in the sweep's output directory (atomically); None when no point has a record.

    Images are shown at most ``THUMB`` pixels on the long edge, in a near-square grid in sweep order;
    a point without an image is a grey tile labelled with its status.
    """
    shown = [records[p.name] for p in sweep.points if p.name in records]
    if not shown:
        return None
    thumbs = [_thumbnail(r) for r in shown]
    width = max((t.width for t in thumbs if t), default=THUMB)
    height = max((t.height for t in thumbs if t), default=THUMB)
    columns = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / columns)
    cell_w = max(width, 120) + PAD
    cell_h = height + PAD + LINE * (max(1, len(sweep.varying)) + 3)
    sheet = Image.new("RGB", (columns * cell_w + PAD, rows * cell_h + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (record, thumb) in enumerate(zip(shown, thumbs)):
        x, y = PAD + (i % columns) * cell_w, PAD + (i // columns) * cell_h
        if thumb is None:
            draw.rectangle((x, y, x + width - 1, y + height - 1), fill=MISSING)
        else:
            sheet.paste(thumb, (x + (width - thumb.width) // 2, y + (height - thumb.height) // 2))
        text = labels(sweep, record["params"]) or [record["name"]]
        if record.get("status") != "done":
            text.append(str(record.get("status")))
        elif record.get("quality"):  # the distances, so that the sheet can be read (and the manifest sorted) by quality
            q = record["quality"]
            text.append(f"style {q['style_distance']:.3g} content {q['content_distance']:.3g}")
            if all(k in q for k in LAYER_KEYS):
                text.append("layers " + " ".join(f"{q[k]:.2g}" for k in LAYER_KEYS))
        for j, line in enumerate(text):
            draw.text((x, y + height + 2 + j * LINE), line, fill=TEXT, font=font)
    path = sweep.output_dir / CONTACT_SHEET
    with atomic_write(path) as f:
        sheet.save(f, format="PNG")
    return path
