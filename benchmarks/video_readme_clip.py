"""README's clip: a stylized clip's frames beside the clip they were made from, as an animated WebP, and the
stylized frames alone as an H.264 MP4 (the tool's own encoder settings: libx264, CRF 18, yuv420p).

    python benchmarks/video_readme_clip.py /tmp/vt_main/clip /tmp/vt_main/default docs/images/video_pan_zoom
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from PIL import Image

from nst_lightning.video.io import VideoFileSink, read_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", type=Path, help="the content clip (a folder of frames)")
    parser.add_argument("stylized", type=Path, help="the stylized frames (frame_00000.png, ...)")
    parser.add_argument("out", type=Path, help="writes OUT.webp and OUT.mp4")
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--quality", type=int, default=80, help="WebP quality")
    args = parser.parse_args()
    stylized = read_clip(args.stylized)
    content = read_clip(args.content, max(stylized.size), len(stylized.frames))
    pairs = []
    for left, right in zip(content.frames, stylized.frames):
        h, w = right.shape[-2:]
        both = Image.new("RGB", (2 * w, h))
        both.paste(Image.fromarray(left.permute(1, 2, 0).numpy()), (0, 0))
        both.paste(Image.fromarray(right.permute(1, 2, 0).numpy()), (w, 0))
        pairs.append(both)
    webp = args.out.with_suffix(".webp")
    pairs[0].save(webp, save_all=True, append_images=pairs[1:], duration=round(1000 / args.fps), loop=0,
                  quality=args.quality, method=6)
    sink = VideoFileSink(args.out.with_suffix(".mp4"), Fraction(args.fps), replace=True)
    for frame in stylized.frames:
        sink.write(frame.float() / 255)
    sink.close()
    for path in (webp, args.out.with_suffix(".mp4")):
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
