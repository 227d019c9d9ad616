"""How much memory a run can still use: on a CPU what the kernel (and a cgroup limit) allows, on a GPU what is free."""

from __future__ import annotations

from pathlib import Path

import psutil
import torch

CGROUP = Path("/sys/fs/cgroup")


def _system_available() -> int | None:
    """What can be allocated without swapping (psutil: ``MemAvailable`` on Linux); None if it cannot be told."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError):
        return None


def _cgroup_available(root: Path = CGROUP) -> int | None:
    """What a cgroup v2 memory limit leaves (``memory.max - memory.current``); None without a limit. psutil reports
    the machine's memory, not a container's limit, so this is read here."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Bytes a run on ``device`` can still allocate; None when it cannot be told (the pre-check is skipped).

    CPU: the system's available memory (psutil), or less under a cgroup v2 limit. CUDA: the device's free
    memory (``torch.cuda.mem_get_info``) plus what torch's caching allocator holds but does not use.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    known = [b for b in (_system_available(), _cgroup_available()) if b is not None]
    return min(known) if known else None
