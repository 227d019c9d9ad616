"""L-BFGS for a batch of images, on the device: one history, step size and stopping state per image.

The algorithm of :class:`~nst_lightning.model.optimizers.ImageLBFGS`. ``torch.optim.LBFGS`` keeps one history for everything it optimizes, so a batch of images would share
curvature pairs and step sizes (the images would couple), and its step reads the device about four
times (``float(loss)``, ``if opt_cond``, ``if ys > 1e-10``, ``if gtd > -tolerance_change``). This one treats
dimension 0 of the image as the batch and keeps, per image:

- a ring buffer of the last ``m`` curvature pairs (s, y), its own write position, and the pair's age;
- its own curvature-pair skip (``sᵀy > 1e-10``), initial Hessian scale ``γ = sᵀy / yᵀy``, first-step scaling
  ``min(1, 1/|g|₁)`` and step size;
- a done mask: an image marked done (``freeze``) keeps its pixels and its state while the batch goes on.

The direction uses the compact representation of the inverse Hessian (Byrd, Nocedal & Schnabel 1994):
``H g = γ g + S p + γ Y q`` with ``q = −R⁻¹ Sᵀg`` and ``p = R⁻ᵀ ((D + γ YᵀY) R⁻¹ Sᵀg − γ Yᵀg)``, where R is
the upper triangle of SᵀY in the pairs' age order and D its diagonal. That is four batched products with the
history (Sᵀg, Yᵀg, S p, Y q) and two small m×m triangular solves in float64, whatever ``m``: against the
two-loop recursion's 4·m small kernels. SᵀY and YᵀY are kept up to date one row and column per accepted pair.
It is the same direction as torch's two-loop recursion (equal to 1e-10 in float64, tested).

Nothing in ``ImageLBFGS.step`` reads the device: every decision is a ``torch.where``, so the step can be
captured by CUDA graphs and compiled with ``fullgraph=True`` (:func:`lbfgs_update` is the pure update).

With ``bounds`` (default [0, 1], the pixel range) each image is clamped after its step, and the stored step
``s`` is the step actually taken, so the curvature pairs describe the clamped path.

With ``max_step`` each image's step is scaled down, direction kept, so that no value moves by more than that (a
trust region; the stored step is the scaled one). Without a line search, a curvature pair from a tiny first step
has a ``y`` made mostly of float32 rounding, and its ``γ = sᵀy / yᵀy`` can ask for a step of the whole pixel range:
the image turns to noise it never leaves (measured: the default config at 256 px on The Scream with one CPU
thread, the step after a scale change; which runs it hits depends on the summation order, so on the thread count).

With ``first_step`` the first step moves the value with the largest gradient by exactly that much, and each further
step of an image that has no curvature pair yet by twice the previous one's move. Torch's first step has an L1
length of at most ``lr`` whatever the image's size, so each value moves less the more values there are; and after
a multi-scale upsampling the loss curves *down* along the gradient (``sᵀy < 0``: the pair is refused), so a
fixed probe is repeated step after step. Measured at 1024 px after 724 px, the probe refused pairs for 8 steps and
more while the style loss crawled; doubling leaves that region in a few steps (``max_step`` caps the move).
"""

from __future__ import annotations

import torch
from torch import Tensor

HISTORY_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}
CURVATURE_MIN = 1e-10  # a pair is kept only when sᵀy exceeds this (as torch's L-BFGS)


def lbfgs_update(
    x: Tensor,
    g: Tensor,
    state: dict[str, Tensor],
    lr: float,
    tolerance_grad: float,
    tolerance_change: float,
    bounds: tuple[float, float] | None,
    max_step: float | None = None,
    first_step: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One L-BFGS iteration for every image of ``x`` (N×D) with gradient ``g`` (N×D): the new ``x`` and state.

    A function of tensors without host reads (see the module's docstring); it writes the new curvature pair into
    ``state``'s history buffers in place (copying them would cost more than the rest of the update), and returns
    the other entries anew. ``state`` holds ``S``, ``Y``
    (N×m×D), ``SY``, ``YY`` (N×m×m, float64), ``age`` (N×m, -1: empty), ``count``, ``H_diag``, ``t``,
    ``last_step``, ``prev_g``, ``done`` (N) and ``step`` (scalar).
    """
    S, Y, SY, YY, age = state["S"], state["Y"], state["SY"], state["YY"], state["age"]
    n, m = age.shape
    first = state["step"] == 0
    done = state["done"]
    # torch returns at once when the gradient is already below tolerance_grad: the image stays as it is.
    active = ~done & ~(g.abs().amax(1) <= tolerance_grad)

    # The curvature pair of the step just taken (none before the first), into each image's ring buffer: in
    # place at each image's slot (O(N·D)), never a rewrite of the whole history.
    y = g - state["prev_g"]
    s = state["last_step"]
    s64, y64 = s.double(), y.double()
    ys, yy = (y64 * s64).sum(1), (y64 * y64).sum(1)
    accept = active & ~first & (ys > CURVATURE_MIN)
    slot = state["count"] % m
    rows = torch.arange(n, device=slot.device)
    S[rows, slot] = torch.where(accept[:, None], s.to(S.dtype), S[rows, slot])
    Y[rows, slot] = torch.where(accept[:, None], y.to(Y.dtype), Y[rows, slot])
    # N×m: where the new pair went (a comparison, not one_hot, which checks its input on the host)
    here = (torch.arange(m, device=slot.device) == slot[:, None]) & accept[:, None]
    # The big products in the history's dtype (float32 for a bfloat16 history), the small matrices in float64.
    work = torch.float32 if S.dtype == torch.bfloat16 else S.dtype
    s_hist, y_hist = S.to(work), Y.to(work)
    s_new, y_new = s.to(S.dtype).to(work), y.to(Y.dtype).to(work)  # as stored
    # SY[i, j] = s_iᵀ y_j and YY[i, j] = y_iᵀ y_j: the new pair's row and column; with them Sᵀg and Yᵀg. One
    # pass over each history buffer (the update is bound by reading them): S·[y_new, g] and Y·[s_new, y_new, g].
    gw = g.to(work)
    # (As k×D · (m×D)ᵀ products: with the k vectors as rows, BLAS reads the history once and fast.)
    from_s = torch.bmm(torch.stack([y_new, gw], dim=1), s_hist.transpose(1, 2)).double()  # N×2×m
    from_y = torch.bmm(torch.stack([s_new, y_new, gw], dim=1), y_hist.transpose(1, 2)).double()  # N×3×m
    sy_col, s_g = from_s[:, 0], from_s[:, 1]  # s_iᵀ y_new, s_iᵀ g
    sy_row, yy_new, y_g = from_y[:, 0], from_y[:, 1], from_y[:, 2]  # s_newᵀ y_j, y_iᵀ y_new, y_iᵀ g
    SY = torch.where(here[:, None, :], sy_col[:, :, None], SY)
    SY = torch.where(here[:, :, None], sy_row[:, None, :], SY)
    YY = torch.where(here[:, None, :], yy_new[:, :, None], YY)
    YY = torch.where(here[:, :, None], yy_new[:, None, :], YY)
    age = torch.where(here, state["count"][:, None], age)
    count = state["count"] + accept.long()
    H_diag = torch.where(accept, ys / yy.clamp_min(1e-300), state["H_diag"])

    # The direction d = −H g from the compact representation (float64 small matrices), in the pairs' age
    # order (each image's ring buffer starts at its own slot; empty slots sort first).
    order = torch.argsort(age, dim=1, stable=True)
    valid = torch.gather(age, 1, order) >= 0
    both = valid[:, :, None] & valid[:, None, :]
    sy = _permute(SY, order)
    yy_m = torch.where(both, _permute(YY, order), torch.zeros_like(YY))
    eye = torch.eye(m, dtype=torch.float64, device=g.device).expand(n, m, m)
    R = torch.where(both, torch.triu(sy), torch.where(valid[:, :, None] | valid[:, None, :], torch.zeros_like(sy), eye))
    D = torch.diagonal(sy, dim1=1, dim2=2) * valid
    a = torch.gather(s_g, 1, order) * valid  # Sᵀg
    b = torch.gather(y_g, 1, order) * valid  # Yᵀg
    gamma = H_diag[:, None]
    u = torch.linalg.solve_triangular(R, a[..., None], upper=True)[..., 0]  # R⁻¹ Sᵀg
    inner = D * u + gamma * torch.bmm(yy_m, u[..., None])[..., 0] - gamma * b
    p = torch.linalg.solve_triangular(R.transpose(1, 2), inner[..., None], upper=False)[..., 0]
    # Back to slot order for the products with the history.
    u_slots = torch.zeros_like(u).scatter(1, order, u).to(work)
    p_slots = torch.zeros_like(p).scatter(1, order, p).to(work)
    gamma_w = gamma.to(work)
    # H g = γ g + S p − γ Y u: one more pass over each buffer.
    Hg = gamma_w * gw + torch.bmm(p_slots[:, None, :], s_hist)[:, 0] - gamma_w * torch.bmm(u_slots[:, None, :], y_hist)[:, 0]
    d = (-Hg).to(g.dtype)

    # The step size: the first step scaled by the gradient's size, then lr (torch's rule, per image). With
    # ``first_step``, every step of an image that has no curvature pair yet moves its largest-gradient value by
    # that much: a step of the same size in pixels at any image size (see the module's docstring).
    if first_step is None:
        t_first = torch.clamp(1.0 / g.abs().sum(1), max=1.0) * lr
        probing = first
    else:
        # Doubled at each step without a kept pair: a pair is refused when the loss curves down along the step
        # (sᵀy ≤ 0, as after every multi-scale upsampling: a smooth image sits near a saddle of the style loss),
        # and there a descent step can safely grow; the trust region (``max_step``) caps it.
        probes = state["step"].clamp(max=60).to(g.dtype)
        t_first = first_step * torch.pow(2.0, probes) / g.abs().amax(1).clamp_min(1e-30)
        probing = count == 0
    t = torch.where(probing, t_first, torch.full_like(t_first, lr))
    gtd = (g * d).sum(1)
    move = active & (gtd <= -tolerance_change)
    planned = d * t[:, None] * move[:, None]
    if max_step is not None:  # a trust region: no value of an image moves more than max_step in one step
        largest = planned.abs().amax(1)
        planned = planned * torch.clamp(max_step / largest.clamp_min(1e-30), max=1.0)[:, None]
    x_new = x + planned
    if bounds is not None:
        clamped = x_new.clamp(*bounds)
        taken = planned - (x_new - clamped)  # the step actually taken: t·d where nothing was clamped
        x_new = clamped
    else:
        taken = planned

    keep = active[:, None]
    new_state = {
        "S": S, "Y": Y, "SY": SY, "YY": YY, "age": age, "count": count, "H_diag": H_diag,
        "t": torch.where(active, t, state["t"]),
        "last_step": torch.where(keep, taken, state["last_step"]),
        "prev_g": torch.where(keep, g, state["prev_g"]),
        "done": done,
        "step": state["step"] + 1,
    }
    return x_new, new_state


def _row(history: Tensor, slot: Tensor) -> Tensor:
    """``history[n, slot[n]]`` for every image n: N×D."""
    n, _, width = history.shape
    return torch.gather(history, 1, slot[:, None, None].expand(n, 1, width))[:, 0]


def _permute(matrix: Tensor, order: Tensor) -> Tensor:
    """``matrix[n][order[n]][:, order[n]]`` for every image n (N×m×m)."""
    n, m, _ = matrix.shape
    rows = torch.gather(matrix, 1, order[:, :, None].expand(n, m, m))
    return torch.gather(rows, 2, order[:, None, :].expand(n, m, m))


def empty_state(x: Tensor, history: int, dtype: torch.dtype) -> dict[str, Tensor]:
    """The state before the first step, for N images of D values each (``x``: N×D)."""
    n, width = x.shape
    zeros = torch.zeros_like(x)
    return {
        "S": torch.zeros(n, history, width, dtype=dtype, device=x.device),
        "Y": torch.zeros(n, history, width, dtype=dtype, device=x.device),
        "SY": torch.zeros(n, history, history, dtype=torch.float64, device=x.device),
        "YY": torch.zeros(n, history, history, dtype=torch.float64, device=x.device),
        "age": torch.full((n, history), -1, dtype=torch.long, device=x.device),
        "count": torch.zeros(n, dtype=torch.long, device=x.device),
        "H_diag": torch.ones(n, dtype=torch.float64, device=x.device),
        "t": torch.zeros(n, dtype=x.dtype, device=x.device),
        "last_step": zeros,
        "prev_g": zeros.clone(),
        "done": torch.zeros(n, dtype=torch.bool, device=x.device),
        "step": torch.zeros((), dtype=torch.long, device=x.device),
    }


def resized_history(state: dict[str, Tensor], history: int) -> dict[str, Tensor]:
    """``state`` with room for ``history`` pairs per image, keeping each image's newest pairs (outside the step:
    a new memory budget, a resumed run). A pair of age a goes to slot a mod ``history``: the ages of an image's
    pairs are consecutive, so the ring buffer's next write still lands on its oldest pair."""
    old_m = state["age"].shape[1]
    if history == old_m:
        return state
    new = dict(state)
    n, _, width = state["S"].shape
    device = state["S"].device
    new["S"] = torch.zeros(n, history, width, dtype=state["S"].dtype, device=device)
    new["Y"] = torch.zeros_like(new["S"])
    new["SY"] = torch.zeros(n, history, history, dtype=torch.float64, device=device)
    new["YY"] = torch.zeros_like(new["SY"])
    new["age"] = torch.full((n, history), -1, dtype=torch.long, device=device)
    for i in range(n):
        ages = state["age"][i]
        kept = [k for k in sorted(range(old_m), key=lambda k: int(ages[k])) if int(ages[k]) >= 0][-history:]
        slots = [int(ages[k]) % history for k in kept]
        for k, slot in zip(kept, slots):
            new["S"][i, slot], new["Y"][i, slot], new["age"][i, slot] = state["S"][i, k], state["Y"][i, k], ages[k]
        for k, slot in zip(kept, slots):
            for k2, slot2 in zip(kept, slots):
                new["SY"][i, slot, slot2] = state["SY"][i, k, k2]
                new["YY"][i, slot, slot2] = state["YY"][i, k, k2]
    return new
