"""The adversarial pass of issue #24 (docs/robustness.md, "Adversarial pass"): cases a careful or hostile user
would try, each run against the real command (``python -m nst_lightning`` as a child process, 32 px, 2 steps,
tiny images made in a temporary folder), each with the outcome it should have and a verdict.

    python benchmarks/adversarial.py                      # every case, one at a time (about 12 minutes on 2 cores)
    python benchmarks/adversarial.py -k output resume     # the cases whose name holds any of these words
    python benchmarks/adversarial.py --markdown results.md   # also write the table

Cases run one at a time, never in parallel. The exit status is the number of cases that fail (0: all pass).
Kept out of the test suite on purpose: it runs many whole processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SINGLE_SCALE = ROOT / "configs" / "single_scale.yaml"
TINY = ROOT / "tests" / "conf" / "tiny.yaml"
PYTHON = sys.executable
STEPS = "2"


@dataclass
class Result:
    code: int | None
    err: str
    out: str

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("nst-lightning:")]

    def show(self) -> str:
        lines = self.error_lines() or self.err.strip().splitlines()[-1:] or self.out.strip().splitlines()[-1:]
        return f"exit {self.code}: " + " | ".join(line[:160] for line in lines[:3])


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": os.environ.get("PYTHONPATH", "")}


def command(*args: str) -> list[str]:
    return [PYTHON, "-m", "nst_lightning", *args]


def run(d: Path, *args: str, timeout: float = 300, extra_env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(command(*args), cwd=d, env={**env(), **(extra_env or {})}, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return Result(proc.returncode, proc.stderr, proc.stdout)


def image(path: Path, size: tuple[int, int] = (40, 32), colour: tuple[int, int, int] = (200, 80, 40),
          fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def fit(d: Path, *extra: str, output: str | Path = "out.png", content: str | Path | None = None,
        style: str | Path | None = None) -> list[str]:
    """The arguments of a quiet 2-step 32 px run with random weights, over tiny images in ``d``."""
    content = content if content is not None else image(d / "content.png")
    style = style if style is not None else image(d / "style.png", colour=(20, 60, 220))
    return ["fit", "--config", str(SINGLE_SCALE), "--config", str(TINY), "--trainer.max_steps", STEPS,
            "--model.backbone.init_args.weights", "none", "--data.content", str(content),
            "--data.style", str(style), "--output", str(output), *extra]


def no_leftovers(d: Path) -> str | None:
    """None when ``d`` holds no lock and no temporary file of the tool's (anywhere below it)."""
    left = [str(p.relative_to(d)) for p in d.rglob(".*") if p.name.endswith((".lock", ".tmp"))]
    return f"left {left}" if left else None


# Each check returns None when the outcome is the expected one, else what differs.
def one_line(r: Result, *needles: str, code: int | None = None) -> str | None:
    lines = r.error_lines()
    if r.code in (0, None):
        return "exit 0 (expected an error)"
    if code is not None and r.code != code:
        return f"exit {r.code}, expected {code}"
    if "Traceback" in r.err:
        return "traceback"
    if len(lines) != 1 or not lines[0].startswith("nst-lightning: error: "):
        return f"{len(lines)} nst-lightning lines"
    missing = [n for n in needles if n.lower() not in lines[0].lower()]
    return f"message lacks {missing}" if missing else None


def works(r: Result, *outputs: Path) -> str | None:
    if r.code != 0:
        return f"exit {r.code}"
    if "Traceback" in r.err:
        return "traceback"
    absent = [str(p) for p in outputs if not p.is_file()]
    return f"missing {absent}" if absent else None


def first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def unchanged(path: Path, data: bytes) -> str | None:
    if not path.exists() and not path.is_symlink():
        return f"{path.name} removed"
    return None if path.read_bytes() == data else f"{path.name} changed"


@dataclass
class Case:
    name: str
    family: str
    expected: str
    body: Callable[[Path], tuple[list[str], Result, str | None]]


CASES: list[Case] = []


def case(name: str, family: str, expected: str):
    def register(body):
        CASES.append(Case(name, family, expected, body))
        return body
    return register


def one_line_case(name: str, family: str, expected: str, make: Callable[[Path], list[str]], *needles: str,
                  code: int | None = None, no_output: str = "out.png") -> None:
    """A case whose outcome is one error line holding ``needles`` and no ``no_output`` written."""
    def body(d: Path):
        args = make(d)
        r = run(d, *args)
        written = (d / no_output).exists() if no_output else False
        return args, r, first(one_line(r, *needles, code=code), f"{no_output} written" if written else None,
                              no_leftovers(d))
    CASES.append(Case(name, family, expected, body))


def works_case(name: str, family: str, expected: str, make: Callable[[Path], list[str]],
               output: str = "out.png") -> None:
    def body(d: Path):
        args = make(d)
        r = run(d, *args)
        return args, r, first(works(r, d / output), no_leftovers(d))
    CASES.append(Case(name, family, expected, body))


# ---------------------------------------------------------------------------------------------- inputs
works_case("input: content path with spaces", "inputs", "runs (exit 0)",
           lambda d: fit(d, content=image(d / "my photos" / "a b.png")))
works_case("input: unicode content path", "inputs", "runs (exit 0)",
           lambda d: fit(d, content=image(d / "фото" / "日本 é.png")))
works_case("input: newline in the content's name", "inputs", "runs (exit 0)",
           lambda d: fit(d, content=image(d / "a\nb.png")))
works_case("input: content is a symlink", "inputs", "runs (exit 0)",
           lambda d: (os.symlink(image(d / "real.png"), d / "link.png"), fit(d, content=d / "link.png"))[1])
works_case("input: style is the content file", "inputs", "runs (exit 0)",
           lambda d: fit(d, content=image(d / "same.png"), style=d / "same.png"))
works_case("input: animated GIF content", "inputs", "runs on the first frame (exit 0)",
           lambda d: (Image.new("RGB", (40, 32), (9, 9, 9)).save(
               d / "anim.gif", save_all=True, append_images=[Image.new("RGB", (40, 32), (200, 0, 0))]),
               fit(d, content=d / "anim.gif"))[1])
works_case("input: BMP content, TIFF style", "inputs", "runs (exit 0)",
           lambda d: fit(d, content=image(d / "c.bmp"), style=image(d / "s.tiff")))
works_case("input: WebP content with a .jpg name", "inputs", "runs: format sniffed, not the suffix (exit 0)",
           lambda d: fit(d, content=image(d / "c.jpg", fmt="WEBP")))
works_case("input: a 1:4 portrait at 64 px (short edge exactly 16 px)", "inputs", "runs (exit 0)",
           lambda d: fit(d, "--data.size", "64", content=image(d / "tall.png", size=(300, 1200))))
one_line_case("input: dangling symlink as content", "inputs", "one line naming the file",
              lambda d: (os.symlink(d / "gone.png", d / "dangling.png"), fit(d, content=d / "dangling.png"))[1],
              "dangling.png")
one_line_case("input: directory named style.png", "inputs", "one line naming the directory",
              lambda d: ((d / "dir.png").mkdir(), fit(d, style=d / "dir.png"))[1], "dir.png")
one_line_case("input: PNG header declaring 9000x9000, 100 bytes of data", "inputs",
              "one line naming the file (truncated), no large allocation",
              lambda d: (truncatepng_header(d / "huge.png", 9000, 9000), fit(d, content=d / "huge.png"))[1], "huge.png")
one_line_case("input: SVG content", "inputs", "one line naming the file",
              lambda d: ((d / "c.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>"),
                         fit(d, content=d / "c.svg"))[1], "c.svg")
one_line_case("input: unknown sample name", "inputs", "one line naming sample:nope.jpg",
              lambda d: fit(d, content="sample:nope.jpg"), "nope.jpg")
one_line_case("input: one of two styles missing", "inputs", "one line naming the missing style",
              lambda d: fit(d, "--data.style", f"[{image(d / 's1.png')}, {d / 'missing.png'}]"), "missing.png")
one_line_case("input: mask list longer than styles", "inputs", "one line naming data.masks",
              lambda d: fit(d, "--data.masks", f"[{image(d / 'm1.png')}, {image(d / 'm2.png')}]"), "mask")


def truncatepng_header(path: Path, width: int, height: int) -> Path:
    full = png_header(width, height)
    path.write_bytes(full[:100])
    return path


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring width x height (the data that follows is cut)."""
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\0" * 4096)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat)


# ---------------------------------------------------------------------------------------------- config values
# Exit status 2: what the parser refuses (a value of the wrong type) and a run that cannot work as configured; 1: a
# value of the right type out of its range (docs/robustness.md).
for key, value, needle, code in [
    ("--data.size", "-32", "data.size", 1),
    ("--data.size", "nan", "data.size", 2),
    ("--data.size", "1.5", "data.size", 2),
    ("--data.size", "1000000000", "data.size", 2),
    ("--data.style_scale", "0", "data.style_scale", 1),
    ("--data.style_scale", "nan", "data.style_scale", 2),
    ("--trainer.max_steps", "-5", "trainer.max_steps", 2),
    ("--model.losses.style.init_args.weight", "inf", "model.losses.style", 2),
    ("--model.losses.tv.init_args.weight", "-1", "model.losses.tv", 1),
    ("--model.losses.content.init_args.weight", "1e400", "model.losses.content", 1),
    ("--model.losses.style.init_args.layers", "[]", "layers", 1),
    ("--data.style_blend_weights", "[0]", "data.style_blend_weights", 1),
    ("--data.style_blend_weights", "[-1]", "data.style_blend_weights", 1),
    ("--model.optimizer.init_args.lr", "0", "lr", 1),
    ("--model.optimizer.init_args.lr", "nan", "model.optimizer.lr: expected float", 2),
    ("--model.optimizer.init_args.history_size", "0", "history_size", 1),
    ("--seed_everything", "-1", "seed_everything", 1),
    ("--snapshot_every", "abc", "snapshot_every", 2),
    ("--model.tiling.memory_budget", "-1", "memory_budget", 1),
]:
    one_line_case(f"value: {key} {value}", "values", f"exit {code}, one line naming {needle}",
                  lambda d, key=key, value=value: fit(d, key, value), needle, code=code)
one_line_case("value: --data.style given a mapping", "values", "one line naming the style image",
              lambda d: fit(d, "--data.style", "{a: 1}"), "style image")
one_line_case("value: Adam's betas of the wrong length", "values", "exit 2, one line naming betas",
              lambda d: fit(d, "--model.optimizer", "ImageAdam", "--model.optimizer.init_args.betas", "[0.9]"),
              "betas", code=2)
one_line_case("config: YAML syntax error", "values", "exit 2, one line naming the file",
              lambda d: ((d / "bad.yaml").write_text("data: {size: [32\n"),
                         fit(d, "--config", str(d / "bad.yaml")))[1], "bad.yaml", code=2)
one_line_case("config: a PNG given as --config", "values", "exit 2, one line naming the file",
              lambda d: fit(d, "--config", str(image(d / "cfg.png"))), "cfg.png", code=2)
one_line_case("config: missing --config file", "values", "exit 2, one line naming the file",
              lambda d: fit(d, "--config", str(d / "nope.yaml")), "nope.yaml", code=2)
one_line_case("config: unknown key in a config file", "values", "exit 2, one line naming the key",
              lambda d: ((d / "k.yaml").write_text("data:\n  sise: 32\n"), fit(d, "--config", str(d / "k.yaml")))[1],
              "sise", code=2)


# ---------------------------------------------------------------------------------------------- output paths
@case("output: --output is the content image", "outputs", "refused naming --output; the content image untouched")
def _output_is_content(d: Path):
    content = image(d / "c.png")
    data = content.read_bytes()
    args = fit(d, content=content, output=content)
    r = run(d, *args)
    return args, r, first(one_line(r, "c.png"), unchanged(content, data))


@case("output: --output is the content image, --overwrite true", "outputs",
      "refused: --overwrite replaces outputs, never an input of the run; the content untouched")
def _output_is_content_overwrite(d: Path):
    content = image(d / "c.png")
    data = content.read_bytes()
    args = fit(d, "--overwrite", "true", content=content, output=content)
    r = run(d, *args)
    return args, r, first(one_line(r, "c.png"), unchanged(content, data))


@case("output: --output is the style image through a symlink, --overwrite true", "outputs",
      "refused; the style image untouched")
def _output_is_style_link(d: Path):
    style = image(d / "s.png", colour=(1, 2, 3))
    data = style.read_bytes()
    os.symlink(style, d / "out.png")
    args = fit(d, "--overwrite", "true", style=style, output=d / "out.png")
    r = run(d, *args)
    return args, r, first(one_line(r), unchanged(style, data))


@case("output: existing --output", "outputs", "one line naming it; the file untouched")
def _output_exists(d: Path):
    (d / "out.png").write_bytes(b"mine")
    args = fit(d)
    r = run(d, *args)
    return args, r, first(one_line(r, "out.png"), unchanged(d / "out.png", b"mine"), no_leftovers(d))


@case("output: --output a symlink to the user's file, --overwrite true", "outputs",
      "runs; the link is replaced, the file it pointed to untouched")
def _output_symlink_overwrite(d: Path):
    (d / "mine.png").write_bytes(b"mine")
    os.symlink(d / "mine.png", d / "out.png")
    args = fit(d, "--overwrite", "true")
    r = run(d, *args)
    return args, r, first(works(r, d / "out.png"), unchanged(d / "mine.png", b"mine"))


one_line_case("output: --output is a directory", "outputs", "one line naming it",
              lambda d: ((d / "out.png").mkdir(), fit(d))[1], "out.png", no_output="")
works_case("output: --output in directories that do not exist", "outputs", "runs; the directories made",
           lambda d: fit(d, output=d / "a" / "b" / "c" / "out.png"), output="a/b/c/out.png")
works_case("output: uppercase .PNG", "outputs", "runs (exit 0)", lambda d: fit(d, output="OUT.PNG"),
           output="OUT.PNG")
works_case("output: unicode and spaces in --output", "outputs", "runs (exit 0)",
           lambda d: fit(d, output="résultat final ✓.png"), output="résultat final ✓.png")
one_line_case("output: --output under /proc (cannot be created)", "outputs", "one line naming --output",
              lambda d: fit(d, output="/proc/nst_adversarial/out.png"), "output", no_output="")
one_line_case("output: .jpg --output", "outputs", "one line naming --output",
              lambda d: fit(d, output="out.jpg"), "output", no_output="out.jpg")
one_line_case("output: --output '.png' (no stem)", "outputs", "one line naming --output",
              lambda d: fit(d, output=".png"), "output", no_output=".png")


@case("output: the run folder out.run is the user's file", "outputs", "one line naming out.run; the file untouched")
def _run_folder_is_file(d: Path):
    (d / "out.run").write_bytes(b"notes")
    args = fit(d)
    r = run(d, *args)
    return args, r, first(one_line(r, "out.run"), unchanged(d / "out.run", b"notes"),
                          "out.png written" if (d / "out.png").exists() else None)


@case("output: out.run/last.ckpt is the user's, checkpointing on", "outputs", "one line naming it; untouched")
def _run_folder_ckpt(d: Path):
    (d / "out.run").mkdir()
    (d / "out.run" / "last.ckpt").write_bytes(b"mine")
    args = fit(d, "--trainer.enable_checkpointing", "true")
    r = run(d, *args)
    return args, r, first(one_line(r, "last.ckpt"), unchanged(d / "out.run" / "last.ckpt", b"mine"))


@case("output: --output inside another run's folder, named like its snapshot", "outputs",
      "runs, or one line; the other run's snapshot untouched")
def _output_in_run_folder(d: Path):
    (d / "x.run").mkdir()
    (d / "x.run" / "step00002.png").write_bytes(b"snap")
    args = fit(d, output=d / "x.run" / "step00002.png")
    r = run(d, *args)
    return args, r, first(one_line(r, "step00002.png"), unchanged(d / "x.run" / "step00002.png", b"snap"))


# ---------------------------------------------------------------------------------------------- resume
def checkpoint(d: Path, *extra: str, name: str = "first", **inputs: Path) -> Path:
    """A finished run's last.ckpt (checkpointing on), made in ``d``."""
    args = fit(d, "--trainer.enable_checkpointing", "true", *extra, output=f"{name}.png", **inputs)
    r = run(d, *args)
    ckpt = d / f"{name}.run" / "last.ckpt"
    if r.code != 0 or not ckpt.is_file():
        raise RuntimeError(f"could not make a checkpoint: {r.show()}")
    return ckpt


one_line_case("resume: checkpoint of a 48 px run resumed at 32 px", "resume", "one line naming --ckpt_path and the size",
              lambda d: fit(d, "--ckpt_path", str(checkpoint(d, "--data.size", "48"))), "ckpt_path", "size")
one_line_case("resume: an ImageAdam checkpoint resumed with ImageLBFGS", "resume",
              "one line naming --ckpt_path and the optimizer",
              lambda d: fit(d, "--ckpt_path", str(checkpoint(d, "--model.optimizer", "ImageAdam"))),
              "ckpt_path", "optimizer")
one_line_case("resume: truncated checkpoint", "resume", "exit 2, one line naming the file",
              lambda d: (lambda c: (c.write_bytes(c.read_bytes()[: c.stat().st_size // 2]), fit(d, "--ckpt_path", str(c)))[1])(
                  checkpoint(d)), "last.ckpt", code=2)
one_line_case("resume: empty checkpoint file", "resume", "exit 2, one line naming the file",
              lambda d: ((d / "e.ckpt").write_bytes(b""), fit(d, "--ckpt_path", str(d / "e.ckpt")))[1], "e.ckpt",
              code=2)
one_line_case("resume: missing checkpoint", "resume", "exit 2, one line naming the file",
              lambda d: fit(d, "--ckpt_path", str(d / "gone.ckpt")), "gone.ckpt", code=2)
works_case("resume: another run's checkpoint (other content, same size)", "resume",
           "runs: the image and optimizer state restored, the config from the command",
           lambda d: fit(d, "--ckpt_path", str(checkpoint(d, content=image(d / "other.png", colour=(0, 250, 0)))),
                         "--trainer.max_steps", "4"))
one_line_case("resume: checkpoint already at --trainer.max_steps", "resume",
              "exit 2, one line naming --ckpt_path: nothing left to run (was: exit 0 and no image)",
              lambda d: fit(d, "--ckpt_path", str(checkpoint(d))), "ckpt_path", "nothing is left to run", code=2)


# ---------------------------------------------------------------------------------------------- sweeps
def sweep(d: Path, spec: str | None, *extra: str) -> list[str]:
    # A sweep takes one base config: single_scale.yaml with tiny.yaml's values and random weights.
    config = yaml.safe_load(SINGLE_SCALE.read_text())
    config["trainer"].update(yaml.safe_load(TINY.read_text())["trainer"], max_steps=int(STEPS))
    config["model"]["backbone"]["init_args"]["weights"] = "none"
    config["data"].update(size=32, content=str(image(d / "content.png")),
                          style=str(image(d / "style.png", colour=(20, 60, 220))))
    base = d / "base.yaml"
    base.write_text(yaml.safe_dump(config))
    args = ["sweep", "--config", str(base), "--output_dir", str(d / "sw")]
    if spec is not None:
        (d / "spec.yaml").write_text(spec)
        args += ["--sweep", str(d / "spec.yaml")]
    return [*args, *extra]


def sweep_images(d: Path) -> list[str]:
    return sorted(p.name for p in (d / "sw").glob("*.png") if p.name != "contact_sheet.png")


one_line_case("sweep: grid value not a list", "sweeps", "one line naming the key",
              lambda d: sweep(d, "grid:\n  data.size: 32\n"), "data.size", no_output="sw/manifest.json")
one_line_case("sweep: grid over an unknown key", "sweeps", "one line naming the key",
              lambda d: sweep(d, "grid:\n  data.sise: [32, 40]\n"), "data.sise", no_output="sw/manifest.json")
one_line_case("sweep: spec is a list", "sweeps", "one line naming the file",
              lambda d: sweep(d, "- a\n- b\n"), "spec.yaml", no_output="sw/manifest.json")
one_line_case("sweep: --set without '='", "sweeps", "one line naming --set",
              lambda d: sweep(d, None, "--set", "data.size"), "set", no_output="sw/manifest.json")
one_line_case("sweep: reversed uniform bounds", "sweeps", "one line naming the key",
              lambda d: sweep(d, "random:\n  model.losses.style.init_args.weight: {uniform: [5, 1]}\n"),
              "weight", no_output="sw/manifest.json")
one_line_case("sweep: samples 0", "sweeps", "one line naming samples",
              lambda d: sweep(d, "grid:\n  model.losses.tv.init_args.weight: [1, 2]\nsamples: 0\n"), "samples",
              no_output="sw/manifest.json")
one_line_case("sweep: output_dir is a file", "sweeps", "one line naming output_dir",
              lambda d: ((d / "sw").write_text("x"), sweep(d, "grid:\n  model.losses.tv.init_args.weight: [1, 2]\n"))[1],
              "sw", no_output="")


def sweep_case(name: str, expected: str, spec: str | Callable[[Path], str], images: int | list[str],
               *needles: str) -> None:
    """A sweep that either runs, leaving ``images`` (their names, or how many), or stops with one line."""
    def body(d: Path):
        args = sweep(d, spec(d) if callable(spec) else spec)
        r = run(d, *args)
        if r.code != 0:
            return args, r, one_line(r, *needles)
        found = sweep_images(d)
        return args, r, None if (found == images if isinstance(images, list) else len(found) == images) else (
            f"images {found}")
    CASES.append(Case(name, "sweeps", expected, body))


sweep_case("sweep: empty grid", "the base config runs as one point 'base', or one line naming grid", "grid: {}\n",
           ["base.png"], "grid")
sweep_case("sweep: duplicate grid values", "two points (1, 2), or one line naming the repeated point",
           "grid:\n  model.losses.tv.init_args.weight: [1, 1, 2]\n", 2, "weight=1")
sweep_case("sweep: two style files with one name in other folders", "two distinct point images, or one line",
           lambda d: f"grid:\n  data.style: ['{image(d / 'a' / 'x.png')}', '{image(d / 'b' / 'x.png', colour=(0, 0, 255))}']\n",
           2)
sweep_case("sweep: 1 and 1.0 as grid values", "two points with distinct names, or one line",
           "grid:\n  model.losses.tv.init_args.weight: [1, 1.0]\n", 2)
one_line_case("sweep: --config given twice", "sweeps", "one line: a sweep takes one base config",
              lambda d: sweep(d, "grid:\n  data.size: [32, 40]\n", "--config", str(SINGLE_SCALE)), "--config",
              no_output="sw/manifest.json")


@case("sweep: a directory where a point's image goes", "sweeps", "one line naming it; the directory untouched")
def _sweep_dir_at_point(d: Path):
    args = sweep(d, "grid:\n  model.losses.tv.init_args.weight: [1, 2]\n", "--dry_run")
    run(d, *args)
    names = sorted(p.name for p in (d / "sw").glob("*.png"))
    for p in (d / "sw").iterdir():
        (p.rmdir() if p.is_dir() else p.unlink())
    target = d / "sw" / (names[0] if names else "tv.weight=1.png")
    target.mkdir()
    (target / "keep").write_text("k")
    args = sweep(d, "grid:\n  model.losses.tv.init_args.weight: [1, 2]\n")
    r = run(d, *args)
    return args, r, first(one_line(r, target.name), unchanged(target / "keep", b"k"))


# ---------------------------------------------------------------------------------------------- score
def score(d: Path, *extra: str) -> list[str]:
    return ["score", str(image(d / "o.png", size=(64, 48))), "--content", str(image(d / "c.png")),
            "--style", str(image(d / "s.png", size=(20, 20), colour=(0, 0, 200))), *extra]


@case("score: output, content and style of three sizes", "score", "scores (exit 0), one JSON line")
def _score_sizes(d: Path):
    args = score(d, "--json")
    r = run(d, *args)
    try:
        json.loads(r.out.strip().splitlines()[-1])
        parsed = None
    except (ValueError, IndexError):
        parsed = "stdout is not one JSON object"
    return args, r, first(works(r), parsed)


works_case("score: a mask of another size", "score", "scores (exit 0)",
           lambda d: score(d, "--masks", str(image(d / "m.png", size=(13, 77), colour=(255, 255, 255)))), output="o.png")
for value in ["0", "-5", "nan", "100000"]:
    one_line_case(f"score: --size {value}", "score", "exit 2, one line naming --size",
                  lambda d, value=value: score(d, "--size", value), "size", code=2, no_output="")
one_line_case("score: two masks for one style", "score", "one line naming the masks",
              lambda d: score(d, "--masks", str(image(d / "m1.png")), str(image(d / "m2.png"))), "mask", no_output="")
one_line_case("score: --style_scale 0", "score", "exit 2, one line naming style_scale",
              lambda d: score(d, "--style_scale", "0"), "style_scale", code=2, no_output="")
one_line_case("score: missing image to score", "score", "one line naming it",
              lambda d: ["score", str(d / "gone.png"), "--content", str(image(d / "c.png")), "--style",
                         str(image(d / "s.png"))], "gone.png", no_output="")


# ---------------------------------------------------------------------------------------------- plugins
PLUGIN = '''
import torch
from nst_lightning.plugin import LossTerm

class Boom(LossTerm):
    def __init__(self, weight: float = 1.0):
        raise RuntimeError("boom in init")

    def forward(self, features, image):
        return image.sum()
'''


def plugin_module(d: Path, text: str) -> None:
    (d / "advplug.py").write_text(text)


@case("plugin: a loss class whose __init__ raises (class_path on PYTHONPATH)", "plugins",
      "one line naming the key, the class and the error")
def _plugin_init_raises(d: Path):
    plugin_module(d, PLUGIN)
    args = fit(d, "--model.losses.boom.class_path", "advplug.Boom")
    r = run(d, *args, extra_env={"PYTHONPATH": str(d)})
    return args, r, one_line(r, "model.losses.boom", "Boom", "boom in init")


@case("plugin: a class_path whose module fails to import", "plugins",
      "one line naming the key and the module's own error (not 'unknown loss')")
def _plugin_import_fails(d: Path):
    plugin_module(d, "raise ImportError('broken on purpose')\n")
    args = fit(d, "--model.losses.x.class_path", "advplug.Whatever")
    r = run(d, *args, extra_env={"PYTHONPATH": str(d)})
    return args, r, one_line(r, "model.losses.x", "broken on purpose")


@case("plugin: a class_path naming a non-loss (torch.nn.Linear)", "plugins", "exit 2, one line naming the key")
def _plugin_not_a_loss(d: Path):
    args = fit(d, "--model.losses.x.class_path", "torch.nn.Linear")
    r = run(d, *args)
    return args, r, one_line(r, "model.losses.x", code=2)


# ---------------------------------------------------------------------------------------------- signals, concurrency
def start(d: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command(*args), cwd=d, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen) -> Result:
    out, err = proc.communicate(timeout=300)
    return Result(proc.returncode, err, out)


def wait_for(path_glob: Callable[[], list[Path]], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path_glob():
            return True
        time.sleep(0.05)
    return False


@case("signal: SIGTERM 1 s after start (while importing)", "signals",
      "ends by SIGTERM (status 143 or killed by it), no traceback, nothing written")
def _sigterm_startup(d: Path):
    args = fit(d)
    proc = start(d, args)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    r = finish(proc)
    written = [p.name for p in d.iterdir() if p.name not in ("content.png", "style.png")]
    return args, r, first(None if r.code in (143, -signal.SIGTERM) else f"exit {r.code}", "Traceback" if "Traceback" in r.err else None,
                          f"wrote {written}" if written else None)


@case("signal: two SIGINTs in a row mid-run", "signals",
      "exit 130, interrupted.png saved, no --output, no lock or temporary file")
def _double_sigint(d: Path):
    args = fit(d, "--trainer.max_steps", "100000", "--snapshot_every", "1", "--data.size", "48")
    proc = start(d, args)
    wait_for(lambda: list((d / "out.run").glob("step*.png")) if (d / "out.run").exists() else [])
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    r = finish(proc)
    return args, r, first(None if r.code == 130 else f"exit {r.code}", "Traceback" if "Traceback" in r.err else None,
                          None if (d / "out.run" / "interrupted.png").is_file() else "no interrupted.png",
                          "out.png written" if (d / "out.png").exists() else None, no_leftovers(d))


def start_sweep(d: Path, points: int, wait_for_file: str) -> tuple[list[str], subprocess.Popen]:
    """A sweep of ``points`` points of 300 steps each, one at a time, started once ``wait_for_file`` is in its folder."""
    weights = ", ".join(str(k + 1) for k in range(points))
    args = sweep(d, f"grid:\n  model.losses.tv.init_args.weight: [{weights}]\nfixed:\n  trainer.max_steps: 300\n",
                 "--max_batch", "1")
    proc = start(d, args)
    wait_for(lambda: list((d / "sw").glob(wait_for_file)) if (d / "sw").exists() else [])
    return args, proc


@case("signal: SIGTERM mid-sweep", "signals", "exit 143, manifest.json valid, no lock or temporary file")
def _sigterm_sweep(d: Path):
    args, proc = start_sweep(d, 6, "manifest.json")
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    r = finish(proc)
    try:
        json.loads((d / "sw" / "manifest.json").read_text())
        valid = None
    except (OSError, ValueError) as e:
        valid = f"manifest: {e}"
    return args, r, first(None if r.code == 143 else f"exit {r.code}", valid, no_leftovers(d))


@case("concurrency: two runs, one --output, started together", "concurrency",
      "one runs (exit 0), the other one line naming the first's process; no lock left")
def _two_runs(d: Path):
    args = fit(d, "--trainer.max_steps", "20")
    a, b = start(d, args), start(d, args)
    ra, rb = finish(a), finish(b)
    codes = sorted([ra.code, rb.code])
    loser = rb if rb.code else ra
    return args, loser, first(None if codes[0] == 0 and codes[1] != 0 else f"exits {codes}",
                              one_line(loser, "process"), no_leftovers(d))


@case("concurrency: two sweeps, one output_dir", "concurrency", "one runs, the other one line; no lock left")
def _two_sweeps(d: Path):
    args, a = start_sweep(d, 3, ".manifest.json.lock")
    rb = run(d, *args)
    ra = finish(a)
    return args, rb, first(None if ra.code == 0 else f"first exit {ra.code}", one_line(rb), no_leftovers(d))


# ---------------------------------------------------------------------------------------------- driver
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", nargs="*", default=[], help="run only cases whose name holds any of these words")
    parser.add_argument("--markdown", type=Path, help="also write the table of cases to this file")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.k or any(k.lower() in c.name.lower() for k in args.k)]
    rows = []
    for i, c in enumerate(cases, 1):
        with tempfile.TemporaryDirectory(prefix="nst-adv-") as tmp:
            d = Path(tmp)
            try:
                argv, r, problem = c.body(d)
                observed = r.show()
            except Exception as e:  # noqa: BLE001 - a case that cannot even be set up is a failed case
                argv, problem, observed = [], f"{type(e).__name__}: {e}", ""
            shown = shlex.join(argv).replace(tmp, "$TMP").replace(f"{ROOT}/", "")
        verdict = "pass" if problem is None else "FAIL"
        rows.append((c, observed, verdict, problem))
        print(f"[{i}/{len(cases)}] {verdict}  {c.name}\n    command:  nst-lightning {shown}\n    expected: {c.expected}\n    observed: {observed}"
              + (f"\n    problem:  {problem}" if problem else ""), flush=True)
    passed = sum(v == "pass" for _, _, v, _ in rows)
    print(f"{passed} of {len(rows)} pass")
    if args.markdown:
        lines = ["| case | expected | verdict |", "|---|---|---|"]
        lines += [f"| {c.name} | {c.expected} | {v}{': ' + p if p else ''} |".replace("\n", " ")
                  for c, _, v, p in rows]
        args.markdown.write_text("\n".join(lines) + f"\n\n{passed} of {len(rows)} pass\n")
    return len(rows) - passed


if __name__ == "__main__":
    sys.exit(main())
