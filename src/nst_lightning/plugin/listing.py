"""``nst-lightning plugins``: what is installed and what each plugin registers."""

from __future__ import annotations

from nst_lightning.plugin.manager import Plugins


def format_plugins(plugins: Plugins) -> str:
    lines = []
    for info in plugins.info.values():
        version = f" {info.version}" if info.version else ""
        lines.append(f"{info.name} ({info.package}{version})")
        if info.error:
            lines.append(f"  {'failed to import' if info.failed_to_import else 'broken, skipped'}: {info.error}")
        for kind, names in sorted(info.components.items()):
            lines.append(f"  {kind}: {', '.join(names)}")
    return "\n".join(lines)
