"""``nst-lightning score OUT --content C --style S [--size N] [--json]``: the quality of any image, from any tool.

A clip (a video file or a folder of frames) is scored against its content clip, frame by frame, with the warping
error between neighbouring frames (:func:`nst_lightning.quality.temporal.score_clip`; docs/video.md).

Prints one line, ``OUT (WxH): style 0.0438  content 0.501  SSIM 0.463``, or with ``--json`` one JSON
object. The distances are those of :mod:`nst_lightning.quality` (caffe VGG19, float32, Pillow bicubic
resizing), the same numbers a run reports at its end and writes into its PNG.
"""

from __future__ import annotations

import argparse
import json

from nst_lightning.available_memory import available_bytes
from nst_lightning.errors import ConfigError
from nst_lightning.quality.scoring import format_score, score_file
from nst_lightning.quality.scoring_memory import check_score_memory
from nst_lightning.quality.temporal import format_clip_score, score_clip
from nst_lightning.video.io import is_clip


class ScoreUsageError(ConfigError):
    """A ``score`` command line that cannot run."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ScoreUsageError(f"score: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nst-lightning score",
        description="Score an image with the style and content distances (lower is better) and SSIM.",
    )
    parser.add_argument("output", help="the image to score (PNG, JPEG, ...; from any tool), or a clip (.mp4, .mov, .mkv, "
                                       "a folder of frames)")
    parser.add_argument("--content", required=True, help="the content image (for a clip: the content clip)")
    parser.add_argument("--style", required=True, nargs="+", help="the style image(s)")
    parser.add_argument("--size", type=int, default=None, help="resize OUT to this long edge first (default: its own size)")
    # Underscores, as fit's keys (--data.style_scale); the dashed spellings of earlier versions still work.
    parser.add_argument("--style_scale", "--style-scale", dest="style_scale", type=float, default=1.0,
                        help="the styles' long edge relative to OUT's (the run's data.style_scale)")
    parser.add_argument("--style_blend_weights", "--style-blend-weights", dest="style_blend_weights", type=float,
                        nargs="+", default=None, help="one weight per style image")
    parser.add_argument("--masks", nargs="+", default=[], help="one mask per style image: score each style within its region")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of one line")
    return parser


def score_main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.size is not None and args.size < 16:
        raise ScoreUsageError(f"score: --size must be at least 16 pixels, not {args.size}")
    if not args.style_scale > 0:
        raise ScoreUsageError(f"score: --style_scale must be > 0, not {args.style_scale}")
    if args.style_blend_weights is not None and (
        len(args.style_blend_weights) != len(args.style) or any(w < 0 for w in args.style_blend_weights)
        or sum(args.style_blend_weights) <= 0
    ):
        raise ScoreUsageError("score: --style_blend_weights needs one weight >= 0 per style image, with a positive sum")
    if args.masks and len(args.masks) != len(args.style):
        raise ScoreUsageError(f"score: {len(args.masks)} masks for {len(args.style)} style images; give one per style")
    if is_clip(args.output):
        if args.size is not None or args.masks:
            raise ScoreUsageError("score: --size and --masks apply to an image, not to a clip")
        row = score_clip(args.output, args.content, args.style, args.style_blend_weights, args.style_scale)
        if args.json:
            print(json.dumps({"output": args.output, **row}))
        else:
            print(f"{args.output} ({row['frames']} frames, {row['width']}x{row['height']}): {format_clip_score(row)}")
        return
    check_score_memory(available_bytes("cpu"), args.output, args.content, args.style, args.size, args.style_scale,
                       len(args.masks))  # from the headers, before anything is decoded
    row = score_file(args.output, args.content, args.style, args.size, args.style_blend_weights, args.style_scale, args.masks)
    if args.json:
        print(json.dumps({"output": args.output, **row}))
    else:
        print(f"{args.output} ({row['width']}x{row['height']}): {format_score(row)}")
