"""Reading and changing a config as the plain tree YAML gives (dicts, lists, values), by dotted keys.

The command line's pre-checks and the sweep planner read configs before jsonargparse does, so they
see the raw YAML: a component is either a class name (``optimizer: ImageAdam``) or a mapping with
``class_path`` and ``init_args``. These helpers are the one place that knows that shape.
"""

from __future__ import annotations

from typing import Any


def get_key(tree: Any, key: str, default: Any = None) -> Any:
    """The value at dotted ``key`` (``model.optimizer``), or ``default`` where any part is missing."""
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_key(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` to ``value``, making the mappings on the way; a component given by its class
    name alone becomes ``{class_path: name}`` so that its ``init_args`` can be set."""
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {"class_path": node[part]} if isinstance(node.get(part), str) else {}
        node = node[part]
    node[leaf] = value


def class_path(component: Any) -> str | None:
    """The class a component's config names: the string itself, or its ``class_path``; None otherwise."""
    if isinstance(component, str):
        return component
    if isinstance(component, dict) and isinstance(component.get("class_path"), str):
        return component["class_path"]
    return None


def loss_terms(tree: Any) -> dict[str, Any]:
    """The ``model.losses`` mapping (loss name to its config), or {}."""
    losses = get_key(tree, "model.losses")
    return losses if isinstance(losses, dict) else {}
