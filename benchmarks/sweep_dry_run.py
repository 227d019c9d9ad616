"""A large sweep's planning and manifest: the wall time of a ``--dry_run`` and the bytes it writes to its manifest.

    python benchmarks/sweep_dry_run.py                    # 10,000 points: a 100 x 100 grid of loss weights
    python benchmarks/sweep_dry_run.py --side 30          # 900 points

Prints the points, the seconds the dry run took (expansion, names, batch planning, the manifest), the bytes written
to ``manifest.json`` and its journal, and those bytes per point: linear in the points means the same bytes per
point at any size (docs/sweeps.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from common import DEFAULT_CONFIG

from nst_lightning.sweep import manifest
from nst_lightning.sweep.command import build_sweep, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=100, help="values per grid axis (two axes: side² points)")
    args = parser.parse_args()
    values = ",".join(str(i + 1) for i in range(args.side))
    axes = [f"model.losses.style.init_args.weight={values}", f"model.losses.content.init_args.weight={values}"]
    written = {"manifest": 0, "journal": 0}
    write, finish = manifest.write_manifest, manifest.ManifestWriter.finish

    def counted_write(*a, **k):
        path = write(*a, **k)
        written["manifest"] += path.stat().st_size
        return path

    def counted_finish(self):
        written["journal"] += (self.sweep.output_dir / manifest.JOURNAL).stat().st_size
        return finish(self)

    manifest.write_manifest, manifest.ManifestWriter.finish = counted_write, counted_finish
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        sweep = build_sweep(DEFAULT_CONFIG, None, axes, Path(folder) / "sweep")
        with contextlib.redirect_stdout(io.StringIO()):  # a line per point
            run_sweep(sweep, dry_run=True)
        seconds = time.perf_counter() - start
    total = written["manifest"] + written["journal"]
    points = len(sweep.points)
    print(f"{points} points: {seconds:.1f} s; manifest {written['manifest'] / 2**20:.1f} MiB (2 writes), journal "
          f"{written['journal'] / 2**20:.1f} MiB; {total / points:.0f} bytes per point")


if __name__ == "__main__":
    main()
