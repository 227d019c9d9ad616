"""Pictures side by side, one row per style, each scored under it (per-layer style distances and content distance).

    python benchmarks/picture_rows.py --out docs/images/laplacian_512.png --content ../shared/images/tubingen.jpg \\
        --row ../shared/images/the_scream.jpg "jcjohnson=../shared/images/reference/tubingen_scream.png" \\
              "laplacian=benchmarks/results/parametrization_512_images/laplacian_4_levels_default_schedule_scream_512.png"

Each ``--row`` is the style image, then ``LABEL=PATH`` for each picture; the style is shown first (after the
content with ``--show-content``). The scores are ``nst-lightning score``'s
(``nst_lightning.quality.scoring.score_file``), at each picture's own size and ``--style-scale``, or the scale
given with its label, ``LABEL@1.5=PATH`` (a run with ``data.style_scale 1.5``, scored as it was made).

docs/images/default_vs_jcjohnson_512.png (the 512 px runs: ``nst-lightning fit --config C --data.size 512
--data.content tubingen.jpg --data.style S --output OUT``, C default and painterly)::

    python benchmarks/picture_rows.py --out docs/images/default_vs_jcjohnson_512.png --show-content \
        --content ../shared/images/tubingen.jpg \
        --row ../shared/images/starry_night.jpg "jcjohnson=../shared/images/reference/tubingen_starry.png" \
              "default=default_starry512.png" "painterly@1.5=painterly_starry512.png" \
        --row ... (The Scream, The Shipwreck: the same)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from nst_lightning.quality.scoring import score_file

HEIGHT = 288  # each picture's height in the sheet
TEXT = 34  # room for two lines of text under it


def caption(path: Path, content: Path, style: Path, label: str, style_scale: float) -> str:
    score = score_file(path, content, [style], style_scale=style_scale)
    layers = " ".join(f"{score[f'style_relu{k}_1']:.3g}" for k in range(1, 6))
    return f"{label}: {layers}\ncontent {score['content_distance']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--content", required=True)
    parser.add_argument("--style-scale", type=float, default=1.0, help="score as a run with this data.style_scale")
    parser.add_argument("--row", nargs="+", action="append", required=True, metavar="STYLE LABEL[@SCALE]=PATH")
    parser.add_argument("--show-content", action="store_true", help="the content image first in each row")
    args = parser.parse_args()
    content = Path(args.content)
    rows = []
    for style, *pictures in args.row:
        cells = [(Image.open(content).convert("RGB"), "content")] if args.show_content else []
        cells.append((Image.open(style).convert("RGB"), Path(style).stem))
        for item in pictures:
            label, _, path = item.partition("=")
            label, _, scale = label.partition("@")
            score_scale = float(scale) if scale else args.style_scale
            cells.append((Image.open(path).convert("RGB"), caption(Path(path), content, Path(style), label, score_scale)))
        rows.append([(image.resize((round(image.width * HEIGHT / image.height), HEIGHT)), text) for image, text in cells])
    width = max(sum(image.width + 8 for image, _ in row) for row in rows)
    sheet = Image.new("RGB", (width, len(rows) * (HEIGHT + TEXT + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        x, y = 0, r * (HEIGHT + TEXT + 8)
        for image, text in row:
            sheet.paste(image, (x, y))
            draw.multiline_text((x + 2, y + HEIGHT + 2), text, fill="black")
            x += image.width + 8
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
