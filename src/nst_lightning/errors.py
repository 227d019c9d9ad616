"""Error messages for the user: any exception's message as one line that names the key or file.

jsonargparse reports a bad config value as an indented, multi-line tree (every member of
an ``Optional[...]`` union, the given value's type, its repr ...). :func:`one_line` keeps
the key and the reasons, and drops the rest.
"""

from __future__ import annotations

import re

# Lines of jsonargparse's union reports that say nothing about what is wrong.
_NOISE = re.compile(
    r"Does not validate against any of the Union subtypes"
    r"|Subtypes: .*|Errors:|Given value type: .*|Given value: .*"
    r"|Expected a <class 'NoneType'>\.?(?: Got value: .*)?|tip: .*"
)
_PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*(.*)')
_NESTED_KEY = re.compile(r"Given value: NestedArg\(key='([^']+)'")
# A string given where a class is expected is first tried as a path to a config file.
_NOT_A_FILE = re.compile(r"Expected a path but .* either not accessible or invalid")
_REWRITES = (
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
