"""The run's report: the one typed place where the parts of a run leave what others read.

``StyleTransfer.report`` is a :class:`RunReport`. Each field has one writer and is read by the others:

=====================  =======================================  ===========================================
field                  written by                               read by
=====================  =======================================  ===========================================
``logged_losses``,     ``StyleTransfer.training_step`` (on the  the progress bars, once per logging step
``logged_step``        steps it logs; device tensors)
``last_step``          ``StyleTransfer.training_step`` (every   a sweep's final losses, after the run
                       evaluation; device tensors)
``tile_count``         ``StyleTransfer`` (the run plan's tiles) the progress bar
``stop_reason``,       ``StopWhenConverged``, ``on_train_end``  the progress bar, the final line, sweeps
``stop_short``
``events``             ``StopWhenConverged`` (scales ended)     the final line
``quality``,           ``QualityReport`` at ``on_train_end``    ``ImageWriter`` (PNG text chunks; it runs
``metadata``                                                    after ``QualityReport``: see ``cli.fit``),
                                                                the final line, sweeps
``finished_frames``    ``VideoFrames`` (each frame's index and  ``VideoWriter``, which takes them out (it
                       output, at its last step); ``quality``   runs after the user's callbacks: see ``cli.fit``)
                       in a video run
=====================  =======================================  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from nst_lightning.model.step import StepLosses


@dataclass
class RunReport:
    """What a run has said about itself so far (see the module's table for who writes what)."""

    logged_losses: dict[str, Tensor] = field(default_factory=dict)
    logged_step: int | None = None
    last_step: StepLosses | None = None
    tile_count: int = 1
    stop_reason: str | None = None
    stop_short: str | None = None
    events: list[str] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    finished_frames: list[tuple[int, Tensor]] = field(default_factory=list)
