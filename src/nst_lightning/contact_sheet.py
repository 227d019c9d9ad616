"""The contact sheet of a sweep: every point's image in a grid, labelled with the parameters that vary."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .sweep import Sweep, format_value, short_labels

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


def _thumbnail(record: dict[str, Any]) -> Image.Image:
    path = Path(record.get("output", ""))
    if record.get("status") == "done" and path.is_file():
        with Image.open(path) as image:
            thumb = image.convert("RGB")
        thumb.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
        return thumb
    return Image.new("RGB", (THUMB, THUMB), MISSING)


def write_contact_sheet(sweep: Sweep, records: dict[str, dict[str, Any]]) -> Path | None:
    """Write ``contact_sheet.png`` in the sweep's output directory (atomically); None when no point has a record."""
    rows_of = [records[p.name] for p in sweep.points if p.name in records]
    if not rows_of:
        return None
    font = ImageFont.load_default()
    columns = math.ceil(math.sqrt(len(rows_of)))
    rows = math.ceil(len(rows_of) / columns)
    lines = max(1, len(sweep.varying)) + 1
    cell_w, cell_h = THUMB + PAD, THUMB + PAD + LINE * lines
    sheet = Image.new("RGB", (columns * cell_w + PAD, rows * cell_h + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, record in enumerate(rows_of):
        x, y = PAD + (i % columns) * cell_w, PAD + (i // columns) * cell_h
        thumb = _thumbnail(record)
        sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        text = labels(sweep, record["params"]) or [record["name"]]
        if record.get("status") != "done":
            text.append(str(record.get("status")))
        for j, line in enumerate(text):
            draw.text((x, y + THUMB + 2 + j * LINE), line, fill=TEXT, font=font)
    path = sweep.output_dir / CONTACT_SHEET
    fd, tmp = tempfile.mkstemp(prefix=f".{CONTACT_SHEET}.", suffix=".tmp", dir=sweep.output_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            sheet.save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
