"""The command line: ``nst-lightning fit --config ...`` through LightningCLI, plus ``nst-lightning plugins``.

``main()`` loads the plugins first, so that LightningCLI's parser sees every
registered class and configs can name them by their short class names.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from nst_lightning.callbacks.interrupt import RunInterrupted
from nst_lightning.cli.argv_checks import (
    bare_flags_as_true,
    check_config_files,
    resolve_configs,
    with_default_config,
)
from nst_lightning.cli.component_names import check_component_names
from nst_lightning.cli.fit import build_cli
from nst_lightning.cli.messages import (
    VERBOSE_ENV,
    describe,
    error,
    exit_code,
    filter_known_warnings,
    filter_lightning_banners,
    filter_lightning_tips,
    show_plugin_warnings_plainly,
)
from nst_lightning.cli.score import score_main
from nst_lightning.errors import Interrupted
from nst_lightning.plugin.listing import format_plugins
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.sweep.command import sweep_main

DEBUG_ENV = "NST_LIGHTNING_DEBUG"


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def ctrl_c_raises_interrupted() -> Iterator[None]:
    """During a ``fit``, Ctrl-C raises :class:`~nst_lightning.errors.Interrupted` rather than ``KeyboardInterrupt``
    (which Lightning turns into exit status 1), so that it ends the command with status 130 at any moment; during
    the steps the ``InterruptSaver`` takes over (it finishes the step and saves first)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


FIT_OPTIONS = [
    ("--config NAME|FILE", "a shipped config (default, single_scale, multiscale, large, masks, ...) or a YAML file; "
                           "several stack"),
    ("--data.content FILE", "the content image (a path or sample:NAME)"),
    ("--data.style FILE|[FILES]", "the style image, or a list of them"),
    ("--data.size PX", "the output's long edge"),
    ("--data.video CLIP", "stylize a video file or a folder of frames (--config video; docs/video.md)"),
    ("--data.style_scale X", "the style images' size relative to the output's"),
    ("--output FILE.png", "where the image goes (never replaced without --overwrite)"),
    ("--overwrite", "replace an existing output"),
    ("--trainer.max_steps N", "the most optimizer steps"),
    ("--trainer.accelerator gpu|cpu", "the device; --trainer.precision bf16-mixed for reduced precision"),
    ("--model.losses.style.init_args.weight W", "the style weight (likewise content, tv)"),
    ("--model.optimizer NAME", "ImageLBFGS (default), ImageAdam, or a torch.optim class path"),
    ("--model.init content|noise|style|FILE", "where the image starts"),
    ("--model.preserve_colour true", "keep the content's colours"),
    ("--snapshot_every N", "also write a snapshot every N steps"),
    ("--ckpt_path FILE", "resume an interrupted run (<output stem>.run/interrupted.ckpt)"),
    ("--print_config", "print the full config of the run and exit"),
]


def short_fit_help(registry) -> str:
    """``nst-lightning fit --help``: the options people use and the components by name; the full list of every
    Trainer option is ``--help full``."""
    lines = ["usage: nst-lightning fit [--config NAME|FILE] [--KEY VALUE ...]", "",
             "Stylize an image. Every config key works as --key value; 'nst-lightning fit --help full' lists all",
             "of them (Lightning's Trainer included). Reference: docs/usage.md.", "", "options:"]
    lines += [f"  {flag:<42} {text}" for flag, text in FIT_OPTIONS]
    lines += ["", "components (by short name; 'nst-lightning plugins' shows which plugin adds which):"]
    for kind, plural in (("backbone", "backbones"), ("loss", "losses"), ("optimizer", "optimizers"), ("flow", "flows")):
        lines.append(f"  {plural + ':':<12} {', '.join(registry.names(kind))}")
    return "\n".join(lines)


def main(args: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or bool(os.environ.get(DEBUG_ENV))
    verbose = "--verbose" in argv or bool(os.environ.get(VERBOSE_ENV))
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # for every run this command builds (sweep points too)
    registry = None
    filter_known_warnings()
    filter_lightning_tips()
    filter_lightning_banners(verbose)
    show_plugin_warnings_plainly()
    try:
        if argv[:1] == ["plugins"]:
            print(format_plugins(load_plugins()))
            return
        if argv[:1] == ["score"]:
            score_main(argv[1:])
            return
        if argv[:1] == ["fit"] and argv[1:] in (["--help"], ["-h"]):
            print(short_fit_help(load_plugins().registry))
            raise SystemExit(0)
        if argv[:1] == ["fit"] and argv[1:] == ["--help", "full"]:
            argv = ["fit", "--help"]
        if argv[:1] == ["fit"]:
            argv = bare_flags_as_true(with_default_config(argv))
        argv = resolve_configs(argv, ("config", "sweep"), rewrite_inputs=argv[:1] != ["sweep"])
        if argv[:1] == ["sweep"]:
            check_config_files(argv)
            plugins = load_plugins()
            registry = plugins.registry
            check_component_names(argv, registry)  # the base config's; a point's are checked as fit's are
            sweep_main(argv[1:], build_cli, describe=lambda exc: describe(exc, plugins.registry))
            return
        check_config_files(argv)
        registry = load_plugins().registry
        check_component_names(argv, registry)
        with ctrl_c_raises_interrupted():
            build_cli(argv)
    except SystemExit:
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        error("interrupted")
        raise SystemExit(getattr(exc, "exit_code", 130)) from None
    except RunInterrupted as exc:
        print(f"nst-lightning: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
        error(describe(exc, registry))
        raise SystemExit(exit_code(exc)) from None
