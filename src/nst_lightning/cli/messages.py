"""Messages for the user: one-line errors, and the warnings that do not apply to style transfer.

Error messages for the user: any exception's message as one line that names the key or file.

jsonargparse reports a bad config value as an indented, multi-line tree (every member of
an ``Optional[...]`` union, the given value's type, its repr ...). :func:`one_line` keeps
the key and the reasons, and drops the rest.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

from jsonargparse import ArgumentError

from nst_lightning.cli.compat import dict_key_being_built
from nst_lightning.errors import ComponentFault, NstLightningError
from nst_lightning.plugin.manager import PluginImportWarning
from nst_lightning.plugin.registry import KINDS, Registry

# Lines of jsonargparse's union reports that say nothing about what is wrong.
_NOISE = re.compile(
    r"Does not validate against any of the Union subtypes"
    r"|Subtypes: .*|Errors:|Given value type: .*|Given value: .*"
    r"|Expected a <class 'NoneType'>\.?(?: Got value: .*)?|tip: .*"
    # an optimizer's init argument: its key is already the option's (model.optimizer.lr)
    r'|Type typing\.Callable\[.*\] expects a function or a callable class: Parser key "\w+":'
)


_PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*(.*)')


_NESTED_KEY = re.compile(r"Given value: NestedArg\(key='([^']+)'")


# A string given where a class is expected is first tried as a path to a config file.
_NOT_A_FILE = re.compile(r"Expected a path but .* either not accessible or invalid")


_REWRITES = (
    (re.compile(r"\. Got value: Namespace\(.*\)$"), ""),
    (re.compile(r"Type typing\.Callable\[.*\] expects a function or a callable class: "), ""),
    (re.compile(r"Expected a <class '([\w.]+)'>\. Got value: (.*)"), r"expected \1, got \2"),
    (re.compile(r"Expected a dot import path string: (.*)"), r"unknown class \1 (not a registered name nor an importable path)"),
    (re.compile(r"Problem with given class_path '(?:[\w]+\.)*(\w+)':"), r"\1:"),
    (re.compile(r'in "<unicode string>", '), ""),
)


def one_line(message: str) -> str:
    """``message`` on one line: ``<key>: <reason>[; <reason>...]`` for jsonargparse's reports."""
    lines = [line.strip().removeprefix("- ").strip() for line in str(message).splitlines()]
    keys: list[str] = []
    reasons: list[str] = []
    for line in lines:
        nested = _NESTED_KEY.match(line)
        if nested and keys:
            keys[0] = f"{keys[0]}.{nested[1]}"
        match = _PARSER_KEY.fullmatch(line)
        if match:
            # The first key is the option; keys inside it (a class's init args) stay in the reasons.
            line = match[2] if not keys else f"{match[1]}: {match[2]}".strip()
            keys.append(match[1])
        if not line or _NOISE.fullmatch(line):
            continue
        for pattern, replacement in _REWRITES:
            line = pattern.sub(replacement, line)
        reasons.append(line)
    if len(reasons) > 1:
        reasons = [r for r in reasons if not _NOT_A_FILE.fullmatch(r)] or reasons
    text = ""
    for reason in reasons:
        text += reason if not text else (" " if text.endswith(":") else "; ") + reason
    if keys and not text.startswith(keys[0]):
        text = f"{keys[0]}: {text}" if text else keys[0]
    return text.rstrip(":") or " ".join(lines).strip()


def filter_known_warnings() -> None:
    """Silence warnings that do not apply to style transfer, each named precisely."""
    # There is no data to load: the image is the model's parameter.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # lightning 2.6 with jsonargparse >= 4.49: deprecation notices about LightningCLI's own calls
    # (add_instantiator, instantiate_classes, skip_none). Only those raised from lightning's cli module.
    for message in (r"(?s).*deprecated in v4\.49\.0", r"(?s).*only one JsonargparseDeprecationWarning"):
        warnings.filterwarnings("ignore", message=message, module=r"lightning\.pytorch\.cli|nst_lightning\.cli\.fit")
    # lightning 2.6 with torch >= 2.10: lightning's own use of a deprecated torch pytree API.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Without tensorboard Lightning logs to CSV, as README.md says; its notice about tensorboardX adds nothing.
    warnings.filterwarnings("ignore", message=r"Starting from v1\.9\.0, `tensorboardX` has been removed")
    # main() passes the arguments itself (after taking out --debug).
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    # A run shorter than --trainer.log_every_n_steps: the module logs its first and last steps anyway.
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging interval")
    # Resuming (--ckpt_path) from a checkpoint saved mid-epoch: every batch is the same empty item and the
    # step count is restored, so restarting the epoch's data loader changes nothing.
    warnings.filterwarnings("ignore", message=r"(?s).*resuming from a checkpoint that ended before the epoch ended")
    # Resuming a run that wrote last.ckpt: the checkpoint callback keeps no state a resumed run needs.
    warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint")


# Lightning's loggers that print its "💡 Tip" adverts (through rank_zero_info).
TIP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class DropTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing ..." notices; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith("💡 Tip")


def filter_lightning_tips() -> None:
    """Silence Lightning's adverts for its cloud products, and nothing else it logs."""
    for name in TIP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropTips) for f in logger.filters):
            logger.addFilter(DropTips())


# Lines Lightning prints on every run that tell a user of this command nothing they asked for: the seed (the
# config says it), the accelerators it did not use, its own stop line (the final line says why the run
# stopped), its two lines about restoring --ckpt_path (the user named it; a mismatch is an error of its own).
# `--verbose` (or NST_LIGHTNING_VERBOSE=1) shows them.
BANNERS = re.compile(
    r"^(Seed set to \S+|(GPU|TPU|HPU|IPU) available: |LOCAL_RANK: \d+ - |`Trainer\.fit` stopped: `max_steps="
    r"|Restoring states from the checkpoint path at |Restored all states from the checkpoint at )"
)
BANNER_LOGGERS = (*TIP_LOGGERS, "lightning.fabric.utilities.seed")
VERBOSE_ENV = "NST_LIGHTNING_VERBOSE"


class DropBanners(logging.Filter):
    """Drops Lightning's per-run banner lines (:data:`BANNERS`); every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not BANNERS.match(str(record.getMessage()).lstrip())


def filter_lightning_banners(verbose: bool = False) -> None:
    """Drop Lightning's banner lines unless ``verbose`` (then show them again)."""
    for name in BANNER_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, DropBanners)]:
            logger.removeFilter(old)
        if not verbose:
            logger.addFilter(DropBanners())
    action = "default" if verbose else "ignore"
    warnings.filterwarnings(action, message=r"Checkpoint directory .* exists and is not empty")


def show_plugin_warnings_plainly() -> None:
    """Format a plugin's import failure as ``nst-lightning: warning: <text>``, without the core's source line.

    Other warnings keep Python's format (``file:line: Category: text``), which helps their authors. Only
    the format changes (``warnings.formatwarning``), so filters and recorders such as ``pytest.warns`` see
    the warning as before.
    """
    original = warnings.formatwarning
    if getattr(original, "plain_for_plugins", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, PluginImportWarning):
            return f"nst-lightning: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    formatwarning.plain_for_plugins = True
    warnings.formatwarning = formatwarning


def error(message: str) -> None:
    """Print ``message`` as the command's one error line on stderr."""
    print(f"nst-lightning: error: {one_line(message)}", file=sys.stderr)


# -- errors raised inside a component --------------------------------------------------------------

KIND_KEYS = {"backbone": "model.backbone", "loss": "model.losses", "optimizer": "model.optimizer"}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def failing_component(exc: BaseException, registry: Registry | None = None) -> tuple[str, type] | None:
    """(config key, class) of the innermost component whose code raised ``exc``, or None.

    A component is an object with a ``config_key`` (the model tags its backbone, loss terms and
    optimizer with theirs) or an instance of a registered class, or of a component's base class (a class
    a config names by its path), such as one whose ``__init__`` refused a value while jsonargparse built it
    (then the loss's name comes from jsonargparse's frame).
    """
    found, dict_key = None, None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        dict_key = dict_key_being_built(frame) or dict_key
        obj = frame.f_locals.get("self")
        key = getattr(obj, "config_key", None) if obj is not None else None
        if isinstance(key, str):
            found = (key, type(obj))
        elif obj is not None and registry is not None:
            kind = registry.kind_of(type(obj)) or next((k for k, base in KINDS.items() if isinstance(obj, base)), None)
            if kind in KIND_KEYS:
                key = KIND_KEYS[kind] + (f".{dict_key}" if kind == "loss" and dict_key else "")
                found = (key, type(obj))
        tb = tb.tb_next
    return found


def component_name(cls: type, registry: Registry | None) -> str:
    """A component's class and where it comes from: ``MyLoss from plugin 'mine'`` for a registered class, its full
    class path for one a config named by path."""
    owner = registry.owner_of(cls) if registry is not None else None
    return f"{cls.__name__} from plugin {owner!r}" if owner else f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException, registry: Registry | None = None) -> str:
    """The one-line message for ``exc`` (:func:`_describe`), with a did-you-mean for a misspelt init argument."""
    message = _describe(exc, registry)
    return message if "did you mean" in message else message + _closest_init_arg(message, registry)


def _describe(exc: BaseException, registry: Registry | None = None) -> str:
    """The one-line message for ``exc``.

    Our own errors and value errors say what is wrong in their message; raised inside a component
    (a backbone, loss term or optimizer, built-in or a plugin's), the message starts with its config
    key. Any other exception keeps its type (``KeyError: 'x'`` says more than ``'x'``), and one raised
    inside a component's code also names the class and the plugin that registered it.
    """
    for inner in _chain(exc):
        if isinstance(inner, ComponentFault):
            return f"{inner.key} ({component_name(inner.component, registry)}): {one_line(inner.detail)}"
    for inner in _chain(exc):
        component = failing_component(inner, registry)
        if component is None:
            continue
        key, cls = component
        message = one_line(str(inner))
        if isinstance(inner, (NstLightningError, ValueError)) and message:
            return message if message.startswith(key) else f"{key}: {message}"
        return f"{key} ({component_name(cls, registry)}): {type(inner).__name__}" + (f": {message}" if message else "")
    message = str(exc)
    if isinstance(exc, ArgumentError):
        return one_line(message)
    if isinstance(exc, (NstLightningError, ValueError)) and message:
        return one_line(message)
    return f"{type(exc).__name__}: {one_line(message)}" if message else type(exc).__name__


def _closest_init_arg(message: str, registry: Registry | None) -> str:
    """`` (did you mean 'weight'?)`` when jsonargparse refused an init argument that a component does not take
    (``Option 'wieght' is not accepted``) and the component has one close to it; else nothing."""
    found = re.search(r"(\w+): Option '(\w+)' is not accepted", message)
    if found is None or registry is None:
        return ""
    cls = next((classes[found[1]] for classes in registry.classes.values() if found[1] in classes), None)
    if cls is None:
        return ""
    import difflib
    import inspect

    names = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "params")]
    close = difflib.get_close_matches(found[2], names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def exit_code(exc: BaseException) -> int:
    """2 for a command line or config that cannot run (as argparse), 1 for everything else."""
    if isinstance(exc, NstLightningError):
        return exc.exit_code
    return 2 if isinstance(exc, ArgumentError) else 1
