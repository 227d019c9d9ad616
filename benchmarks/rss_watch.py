"""Run a command and record its peak resident set size (VmHWM) as it goes, every few seconds, to a file:
for runs too long to wait for (README: Large images, the 4096x3072 run).

    python benchmarks/rss_watch.py outputs/rss_4096.tsv -- nst-lightning fit --config ... --data.size 4096
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    out = Path(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1 :]
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)
        with out.open("w") as rows:
            rows.write("seconds\tpeak_rss_gb\n")
            while proc.poll() is None:
                try:
                    peak = vm_hwm_kb(proc.pid)
                except OSError:
                    break
                rows.write(f"{time.perf_counter() - start:.0f}\t{peak / 2**20:.3f}\n")
                rows.flush()
                time.sleep(5)
            rows.write(f"# exit {proc.wait()} after {time.perf_counter() - start:.0f} s\n")


if __name__ == "__main__":
    main()
