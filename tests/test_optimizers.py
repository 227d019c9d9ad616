"""The image optimizers' defaults."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.model.optimizers import ImageAdam, ImageLBFGS


def rosenbrock_run(**kwargs) -> list[float]:
    x = torch.nn.Parameter(torch.tensor([-1.2, 1.0]))
    optimizer = ImageLBFGS([x], **kwargs)

    def closure():
        optimizer.zero_grad()
        loss = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
        loss.backward()
        return loss

    losses = []
    for _ in range(30):  # one L-BFGS iteration per step, as under Lightning
        optimizer.step(closure)
        losses.append(float(closure().detach()))
    return losses


def test_lbfgs_with_a_line_search_gets_trials_and_keeps_going():
    """torch's max_eval default (max_iter * 5 // 4 = 1) leaves strong_wolfe no second trial: its step is 0 and
    the run stays at one image forever (seen at 256 px on the default pair). ImageLBFGS gives it 25."""
    assert ImageLBFGS([torch.zeros(2, requires_grad=True)], line_search_fn="strong_wolfe").defaults["max_eval"] == 25
    assert ImageLBFGS([torch.zeros(2, requires_grad=True)]).defaults["max_eval"] == 1  # one evaluation per step
    stalled = rosenbrock_run(line_search_fn="strong_wolfe", max_eval=1)
    assert stalled[-1] == pytest.approx(24.2, rel=1e-3) and len(set(stalled)) == 1  # torch's default: stuck
    losses = rosenbrock_run(line_search_fn="strong_wolfe")
    assert losses[-1] < 0.01 and all(b <= a for a, b in zip(losses, losses[1:]))  # Wolfe steps never go up


def test_adam_defaults_are_the_style_transfer_ones():
    adam = ImageAdam([torch.zeros(2, requires_grad=True)])
    assert adam.defaults["lr"] == 0.02 and adam.defaults["betas"] == (0.99, 0.999) and adam.defaults["eps"] == 0.1


def test_a_saved_lbfgs_state_holds_only_its_filled_pairs_and_resumes_bit_for_bit():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 8, 8)

    def make(image):
        optimizer = ImageLBFGS([image], history_size=50, bounds=None)

        def closure():
            optimizer.zero_grad()
            loss = ((image - target) ** 4).sum()
            loss.backward()
            return loss

        return optimizer, closure

    image = torch.nn.Parameter(torch.zeros(2, 3, 8, 8))
    optimizer, closure = make(image)
    for _ in range(7):
        optimizer.step(closure)
    saved = optimizer.state_dict()
    assert saved["state"][0]["S"].shape == (2, 6, 3 * 8 * 8)  # 7 steps made 6 curvature pairs, of 50 slots
    assert optimizer.state[image]["S"].shape[1] == 50  # the live state is untouched
    resumed_image = torch.nn.Parameter(image.detach().clone())
    resumed, resumed_closure = make(resumed_image)
    resumed.load_state_dict(saved)
    assert resumed.state[resumed_image]["S"].shape[1] == 50
    for _ in range(5):
        optimizer.step(closure)
        resumed.step(resumed_closure)
    assert torch.equal(image, resumed_image)
