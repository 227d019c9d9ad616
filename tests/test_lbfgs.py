"""The project's L-BFGS: torch's iteration per image of a batch, on the device, clamped, resumable."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.lbfgs import empty_state, lbfgs_update
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss
from nst_lightning.model.losses.total_variation import TotalVariationLoss
from nst_lightning.model.optimizers import ImageLBFGS
from nst_lightning.model.style_transfer import set_history_size
from nst_lightning.model.targets import set_targets

from .helpers import float64_problem

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


@pytest.fixture(scope="module")
def problem():
    """A small real problem in float64: the style-transfer loss of 32×40 images on a random VGG19."""
    return float64_problem(32, 40, LAYERS)


def make_losses(problem, weights=None):
    vgg, content, style = problem
    losses = {"content": ContentLoss(), "style": GramStyleLoss(weight=30.0), "tv": TotalVariationLoss()}
    if weights is not None:
        for name, term in losses.items():
            term.set_sample_weights([w[name] for w in weights])
    set_targets(vgg, losses, content, [style], [1.0])
    return {name: term.double() for name, term in losses.items()}


def closure_for(optimizer, image, vgg, losses):
    """The closure Lightning would give the optimizer: the total loss of ``image`` and its gradient."""

    def closure():
        optimizer.zero_grad()
        features = vgg(image, LAYERS)
        total = sum(term(features, image).sum() for term in losses.values())
        total.backward()
        return total

    return closure


def run(problem, optimizer_cls, steps, start, weights=None, **settings):
    vgg = problem[0]
    losses = make_losses(problem, weights)
    image = start.clone().requires_grad_(True)
    optimizer = optimizer_cls([image], **settings)
    closure = closure_for(optimizer, image, vgg, losses)

    images = []
    for _ in range(steps):
        optimizer.step(closure)
        images.append(image.detach().clone())
    return images, optimizer


TORCH = {"max_iter": 1, "line_search_fn": None, "tolerance_grad": 0, "tolerance_change": 0}
OURS = {"bounds": None, "history_dtype": None}


def test_one_image_follows_torchs_lbfgs_in_float64(problem):
    start = problem[1].clone()
    ref, _ = run(problem, torch.optim.LBFGS, 20, start, history_size=5, **TORCH)
    new, _ = run(problem, ImageLBFGS, 20, start, history_size=5, **OURS)  # 5 pairs: the ring buffer wraps
    for step, (a, b) in enumerate(zip(ref, new)):
        assert float((a - b).abs().max()) < 1e-10, step
    assert float((ref[-1] - start).abs().max()) > 0.05  # it did move


def test_each_image_of_a_batch_follows_its_own_run(problem):
    weights = [{"content": 1.0, "style": w, "tv": 1.0} for w in (3.0, 10.0, 30.0, 100.0)]
    torch.manual_seed(1)
    starts = problem[1].expand(4, -1, -1, -1) + 0.01 * torch.randn(4, 3, 32, 40, dtype=torch.float64)
    batch, _ = run(problem, ImageLBFGS, 10, starts, weights, history_size=4, **OURS)
    for i in range(4):
        alone, _ = run(problem, ImageLBFGS, 10, starts[i : i + 1], [weights[i]], history_size=4, **OURS)
        for step in range(10):
            assert float((batch[step][i] - alone[step][0]).abs().max()) < 1e-9, (i, step)


def test_a_step_reads_nothing_back_from_the_device(problem, monkeypatch):
    """No .item(), float(), bool(), .cpu() or .tolist() of a tensor inside step(), over 20 steps."""
    vgg = problem[0]
    losses = make_losses(problem)
    image = problem[1].clone().expand(2, -1, -1, -1).contiguous().requires_grad_(True)
    optimizer = ImageLBFGS([image], history_size=5)

    closure = closure_for(optimizer, image, vgg, losses)

    calls = []
    for name in ("item", "__float__", "__bool__", "__int__", "cpu", "tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    for _ in range(20):
        optimizer.step(closure)
    monkeypatch.undo()
    assert calls == []
    assert float(optimizer.state[image]["count"].min()) >= 5  # the history filled and wrapped


def test_the_update_compiles_as_one_graph():
    torch.manual_seed(0)
    x, g = torch.rand(2, 30), torch.randn(2, 30)
    state = empty_state(x, 4, torch.float32)
    eager_x, eager_state = x, state
    compiled = torch.compile(lbfgs_update, fullgraph=True)
    comp_x, comp_state = x, {key: value.clone() for key, value in state.items()}  # the history is updated in place
    for _ in range(3):
        g = torch.randn(2, 30)
        eager_x, eager_state = lbfgs_update(eager_x, g, eager_state, 1.0, 0.0, 0.0, (0.0, 1.0))
        comp_x, comp_state = compiled(comp_x, g, comp_state, 1.0, 0.0, 0.0, (0.0, 1.0))
    assert torch.allclose(comp_x, eager_x, atol=1e-5)


def test_clamping_is_per_image_and_the_stored_step_is_the_step_taken():
    x = torch.tensor([[0.95, 0.5], [0.5, 0.5]], requires_grad=True)
    optimizer = ImageLBFGS([x], lr=1.0)

    def closure():
        optimizer.zero_grad()
        loss = -(x * torch.tensor([[1.0, 0.0], [0.0, 0.0]])).sum() + ((x - 0.5) ** 2)[1].sum()
        loss.backward()
        return loss

    before = x.detach().clone()
    optimizer.step(closure)
    assert float(x[0, 0]) == 1.0  # clamped at the bound
    state = optimizer.state[x]
    assert torch.allclose(state["last_step"], x.detach() - before, atol=1e-7, rtol=0)
    assert float(state["last_step"][0, 0]) < 0.06  # not the unclamped step, which went past 1


def test_a_frozen_image_keeps_its_pixels_while_the_batch_goes_on(problem):
    vgg = problem[0]
    losses = make_losses(problem)
    image = problem[1].clone().expand(2, -1, -1, -1).contiguous().requires_grad_(True)
    optimizer = ImageLBFGS([image], history_size=5)

    closure = closure_for(optimizer, image, vgg, losses)

    for _ in range(3):
        optimizer.step(closure)
    optimizer.freeze(torch.tensor([True, False]))
    frozen, moving = image[0].detach().clone(), image[1].detach().clone()
    for _ in range(3):
        optimizer.step(closure)
    assert torch.equal(image[0], frozen) and not torch.equal(image[1], moving)


def test_resume_from_a_state_dict_is_bit_identical_and_keeps_dtypes():
    torch.manual_seed(0)
    vgg = VGG19(weights="none")
    vgg.truncate(LAYERS)
    problem = (vgg, torch.rand(1, 3, 32, 40), torch.rand(1, 3, 40, 40))
    start = problem[1].clone().expand(2, -1, -1, -1).contiguous()
    settings = {"history_size": 3, "history_dtype": "bfloat16"}
    whole, _ = run(problem, ImageLBFGS, 8, start, **settings)
    first, optimizer = run(problem, ImageLBFGS, 4, start, **settings)
    saved = optimizer.state_dict()
    assert saved["state"][0]["SY"].dtype == torch.float64 and saved["state"][0]["S"].dtype == torch.bfloat16
    losses = make_losses(problem)
    image = first[-1].clone().requires_grad_(True)
    resumed = ImageLBFGS([image], **settings)
    resumed.load_state_dict(saved)
    assert resumed.state[image]["SY"].dtype == torch.float64 and resumed.state[image]["age"].dtype == torch.long

    closure = closure_for(resumed, image, vgg, losses)

    for _ in range(4):
        resumed.step(closure)
    assert torch.equal(image.detach(), whole[-1])


def test_a_smaller_history_keeps_the_newest_pairs_as_torch_does(problem):
    start = problem[1].clone()
    ref_images, ref = run(problem, torch.optim.LBFGS, 8, start, history_size=5, **TORCH)
    new_images, new = run(problem, ImageLBFGS, 8, start, history_size=5, **OURS)
    set_history_size(ref, 3)
    set_history_size(new, 3)
    assert int(new.state[new.image]["age"].ge(0).sum()) == 3
    vgg, losses = problem[0], make_losses(problem)
    for optimizer, images in ((ref, ref_images), (new, new_images)):
        image = optimizer.param_groups[0]["params"][0]
        closure = closure_for(optimizer, image, vgg, losses)

        for _ in range(4):
            optimizer.step(closure)
            images.append(image.detach().clone())
    assert float((ref_images[-1] - new_images[-1]).abs().max()) < 1e-10


def test_max_step_caps_a_wild_step_per_image_and_leaves_a_sound_one_alone():
    """A quadratic so flat for image 0 that L-BFGS's second step (γ = sᵀy / yᵀy = 1/c) crosses ten pixel ranges;
    image 1's optimum is near: its steps stay small."""
    curvature = torch.tensor([[1e-3], [1.0]], dtype=torch.float64)
    start = torch.full((2, 12), 0.5, dtype=torch.float64)
    optimum = torch.stack([torch.full((12,), 10.0), torch.linspace(0.45, 0.55, 12)]).double()

    def path(max_step):
        image = start.clone().requires_grad_(True)
        optimizer = ImageLBFGS([image], bounds=None, max_step=max_step)
        points = [image.detach().clone()]
        def closure():
            optimizer.zero_grad()
            loss = (curvature * (image - optimum) ** 2).sum() / 2
            loss.backward()
            return loss

        for _ in range(4):
            optimizer.step(closure)
            points.append(image.detach().clone())
        return torch.stack(points)  # steps × images × values

    capped, free = path(0.25), path(None)
    moves = (capped[1:] - capped[:-1]).abs().amax(2)  # per step, per image
    assert moves[:, 0].max() == pytest.approx(0.25) and (free[1:] - free[:-1]).abs().amax(2)[:, 0].max() > 5
    assert torch.equal(capped[:, 1], free[:, 1])  # the cap never bound: the same path to the last bit
    assert ImageLBFGS([torch.zeros(1, requires_grad=True)]).defaults["max_step"] == 0.25


def test_first_step_gives_the_same_path_at_any_gradient_scale_where_torchs_rule_crawls():
    """A flat quadratic, as a large image's mean-normalized loss is (its gradient per pixel shrinks with the
    pixel count): torch's first step, ``min(1, 1/|g|₁)``, moves each value by about 1e-5, the pair it makes has
    ``sᵀy`` below the 1e-10 that keeps a pair, and the run crawls at that rate. ``first_step`` moves the
    largest-gradient value by exactly that much, keeps the pair and reaches the optimum on the next step;
    image 1's loss is 1e4 times steeper and it follows the same path."""
    scale = torch.tensor([[1e-4], [1.0]])
    start = torch.full((2, 1000), 0.5)
    optimum = torch.full((2, 1000), 0.6)

    def path(**settings):
        image = start.clone().requires_grad_(True)
        optimizer = ImageLBFGS([image], **settings)

        def closure():
            optimizer.zero_grad()
            loss = (scale * (image - optimum) ** 2).sum() / 2
            loss.backward()
            return loss

        points = [image.detach().clone()]
        for _ in range(3):
            optimizer.step(closure)
            points.append(image.detach().clone())
        return torch.stack(points)  # steps × images × values

    probed, torchs = path(first_step=1e-3), path()
    assert (probed[1] - probed[0]).abs().amax(1).tolist() == pytest.approx([1e-3, 1e-3], rel=1e-4)
    assert (probed[2] - optimum).abs().max() < 1e-5  # the kept pair's γ = 1/c: the optimum in one step
    assert torch.allclose(probed[:, 0], probed[:, 1], atol=1e-6)  # the same path whatever the loss's scale
    assert (torchs[3, 0] - start[0]).abs().max() < 1e-4  # torch's rule: three steps of about 1e-5 each
    assert ImageLBFGS([torch.zeros(1, requires_grad=True)]).defaults["first_step"] is None
    with pytest.raises(ValueError, match="first_step"):
        ImageLBFGS([torch.zeros(1, requires_grad=True)], first_step=0.0)


def test_first_step_doubles_while_the_loss_curves_down_and_torchs_rule_crawls_there():
    """Started near the top of a double well, ``(x − 0.5)² − 0.04)²`` per value, the loss curves down along the
    gradient (``sᵀy < 0``) until |x − 0.5| passes 0.115, so no pair is kept there, as after a multi-scale
    upsampling. ``first_step`` doubles its move each such step (8 of them here), then keeps pairs and is within
    0.01 of the wells (0.3 and 0.7) after 20 steps; a probe of a fixed 1e-3 would need 200 steps to cross the
    0.2, and torch's rule (a unit step along −g while no pair is kept) is still 0.18 from them."""
    start = torch.full((1, 1000), 0.5) + torch.linspace(-1e-3, 1e-3, 1000)[None]

    def path(steps, **settings):
        image = start.clone().requires_grad_(True)
        optimizer = ImageLBFGS([image], **settings)

        def closure():
            optimizer.zero_grad()
            loss = (((image - 0.5) ** 2 - 0.04) ** 2).sum()
            loss.backward()
            return loss

        points = [image.detach().clone()]
        for _ in range(steps):
            optimizer.step(closure)
            points.append(image.detach().clone())
        return torch.stack(points)[:, 0], optimizer

    probed, optimizer = path(20, first_step=1e-3)
    moves = (probed[1:] - probed[:-1]).abs().amax(1)
    assert moves[:4].tolist() == pytest.approx([1e-3, 2e-3, 4e-3, 8e-3], rel=1e-3)  # doubling while refused
    assert int(optimizer.state[optimizer.param_groups[0]["params"][0]]["count"][0]) > 0  # then pairs are kept
    distance_to_wells = ((probed[-1] - 0.5).abs() - 0.2).abs()
    assert distance_to_wells[(start[0] - 0.5).abs() > 2e-4].max() < 0.01
    torchs, _ = path(20)
    assert (((torchs[-1] - 0.5).abs() - 0.2).abs() > 0.15).all()
