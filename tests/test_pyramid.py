"""The Laplacian pyramid parametrization: its synthesis, adjoint and analysis, and L-BFGS on its coefficients."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.cli import main
from nst_lightning.cli.fit import build_cli
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss
from nst_lightning.model.losses.total_variation import TotalVariationLoss
from nst_lightning.model.optimizers import ImageLBFGS
from nst_lightning.model.pyramid import LaplacianPyramid
from nst_lightning.model.targets import set_targets

from .conftest import fit_args
from .helpers import expect_one_line_error, float64_problem, read_png, run_args

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


@pytest.fixture(scope="module")
def problem():
    """The style-transfer loss of 33×41 images (odd edges: the levels round up) on a random VGG19, in float64."""
    vgg, content, style = float64_problem(33, 41, LAYERS)
    losses = {"content": ContentLoss(), "style": GramStyleLoss(weight=30.0), "tv": TotalVariationLoss()}
    set_targets(vgg, losses, content, [style], [1.0])
    losses = {name: term.double() for name, term in losses.items()}

    def loss(image):
        features = vgg(image, LAYERS)
        return sum(term(features, image).sum() for term in losses.values())

    return loss, content


def test_the_levels_halve_and_round_up():
    assert LaplacianPyramid(4).sizes(33, 41) == [(33, 41), (17, 21), (9, 11), (5, 6)]
    assert LaplacianPyramid(1).sizes(33, 41) == [(33, 41)]
    assert LaplacianPyramid(4).coefficient_count((1, 3, 33, 41)) == 3 * (33 * 41 + 17 * 21 + 9 * 11 + 5 * 6)


@pytest.mark.parametrize("levels", [1, 2, 4, 7])
def test_the_synthesis_of_the_analysis_is_the_image(levels):
    torch.manual_seed(1)
    image = torch.rand(2, 3, 33, 41)
    pyramid = LaplacianPyramid(levels)
    coefficients = pyramid.analyse(image)
    assert [tuple(c.shape[-2:]) for c in coefficients] == pyramid.sizes(33, 41)
    assert float((pyramid.synthesise(coefficients) - image).abs().max()) < 1e-6
    flat = pyramid.flatten(coefficients)
    assert flat.shape == (2, pyramid.coefficient_count(image.shape))
    assert all(torch.equal(a, b) for a, b in zip(pyramid.unflatten(flat, image.shape), coefficients))
    if levels == 1:
        assert torch.equal(coefficients[0], image) and torch.equal(pyramid.synthesise(coefficients), image)


def test_the_adjoint_is_the_synthesis_transposed():
    """⟨S c, v⟩ = ⟨c, Sᵀ v⟩ for random c and v (float64)."""
    torch.manual_seed(2)
    pyramid = LaplacianPyramid(4)
    shape = (2, 3, 33, 41)
    c = [torch.randn(2, 3, h, w, dtype=torch.float64) for h, w in pyramid.sizes(33, 41)]
    v = torch.randn(shape, dtype=torch.float64)
    lhs = (pyramid.synthesise(c) * v).sum()
    rhs = sum((a * b).sum() for a, b in zip(c, pyramid.adjoint(v)))
    assert abs(float(lhs - rhs)) < 1e-10 * abs(float(lhs))


def test_the_coefficients_gradient_is_the_adjoint_of_the_pixels_gradient(problem):
    loss, content = problem
    pyramid = LaplacianPyramid(3)
    coefficients = [c.clone().requires_grad_(True) for c in pyramid.analyse(content)]
    loss(pyramid.synthesise(coefficients)).backward()
    image = pyramid.synthesise([c.detach() for c in coefficients]).requires_grad_(True)
    loss(image).backward()
    for autograd, adjoint in zip(coefficients, pyramid.adjoint(image.grad)):
        assert float((autograd.grad - adjoint).abs().max()) < 1e-10 * float(adjoint.abs().max())
    # a coarse coefficient moves a neighbourhood: its gradient is much larger than a pixel's
    assert float(coefficients[2].grad.abs().mean()) > 4 * float(coefficients[0].grad.abs().mean())


def lbfgs_run(loss, start, steps, pyramid=None, **settings):
    image = start.clone().requires_grad_(True)
    optimizer = ImageLBFGS([image], history_size=5, history_dtype=None, **settings)
    optimizer.set_pyramid(pyramid)

    def closure():
        optimizer.zero_grad()
        value = loss(image)
        value.backward()
        return value

    images = []
    for _ in range(steps):
        optimizer.step(closure)
        images.append(image.detach().clone())
    return images, optimizer


def test_imagelbfgs_with_the_pyramid_is_lbfgs_on_the_coefficients(problem):
    """torch's L-BFGS on the flat coefficients c of the analysis, the loss of S(c), makes the same images (float64)."""
    loss, content = problem
    pyramid = LaplacianPyramid(4)
    ours, _ = lbfgs_run(loss, content, 12, pyramid, bounds=None)  # 12 steps: the 5-pair ring buffer wraps
    c = pyramid.flatten(pyramid.analyse(content)).clone().requires_grad_(True)
    reference = torch.optim.LBFGS([c], max_iter=1, history_size=5, tolerance_grad=0, tolerance_change=0)

    def closure():
        reference.zero_grad()
        value = loss(pyramid.synthesise(pyramid.unflatten(c, content.shape)))
        value.backward()
        return value

    for step in range(12):
        reference.step(closure)
        theirs = pyramid.synthesise(pyramid.unflatten(c.detach(), content.shape))
        assert float((ours[step] - theirs).abs().max()) < 1e-9, step
    pixels, _ = lbfgs_run(loss, content, 12, None, bounds=None)
    assert float((ours[-1] - pixels[-1]).abs().max()) > 1e-3  # a different path from the pixels'
    assert float(loss(ours[-1])) < 0.85 * float(loss(content))


def test_clamped_the_stored_step_is_the_images_change(problem):
    loss, content = problem
    pyramid = LaplacianPyramid(4)
    images, optimizer = lbfgs_run(loss, content, 6, pyramid)
    last = images[-1]
    assert float(last.min()) >= 0 and float(last.max()) <= 1
    assert float((images[-2] - images[-1]).abs().max()) > 0
    step = optimizer.state[optimizer.image]["last_step"]
    change = pyramid.synthesise(pyramid.unflatten(step, content.shape))
    assert float((change - (images[-1] - images[-2])).abs().max()) < 1e-12
    assert float(loss(last)) < float(loss(content))


def test_each_image_of_a_batch_steps_its_own_pyramid(problem):
    loss, content = problem
    torch.manual_seed(3)
    starts = (content.expand(2, -1, -1, -1) + 0.05 * torch.randn(2, 3, 33, 41, dtype=torch.float64)).clamp(0, 1)

    def per_image(images):
        return sum(loss(images[i : i + 1]) for i in range(images.shape[0]))

    batch, _ = lbfgs_run(per_image, starts, 5, LaplacianPyramid(3))
    for i in range(2):
        alone, _ = lbfgs_run(loss, starts[i : i + 1], 5, LaplacianPyramid(3))
        assert float((batch[-1][i] - alone[-1][0]).abs().max()) < 1e-9, i


def test_a_run_with_the_pyramid_lowers_the_loss(tmp_path):
    """The command, 12 steps at 48 px with the pyramid: the total loss falls, and the run's identity says laplacian."""
    cli = build_cli(fit_args(tmp_path, "--data.size", "48", "--trainer.max_steps", "12", "--model.parametrization",
                             "laplacian", "--model.pyramid_levels", "3")[1:], run=False)
    model = cli.model
    assert model.pyramid is not None and model.pyramid.levels == 3
    cli.trainer.fit(model, cli.datamodule)
    first = model.loss_terms(model.initial_image())
    last = model.loss_terms(model.image.detach())
    assert float(sum(t.sum() for t in last.values())) < 0.5 * float(sum(t.sum() for t in first.values()))
    assert model.run_identity()["parametrization"] == "laplacian:3"
    assert cli.trainer.optimizers[0].pyramid is model.pyramid


@pytest.mark.parametrize(("extra", "needles"), [
    (["--model.optimizer", "ImageAdam"], ["model.parametrization: laplacian needs model.optimizer ImageLBFGS", "ImageAdam"]),
    (["--model.optimizer.init_args.line_search_fn", "strong_wolfe"], ["without a line search", "strong_wolfe"]),
    (["--model.tiling.tile_size", "192", "--data.size", "240"], ["laplacian cannot run tiled", "240x180"]),
    (["--model.pyramid_levels", "0"], ["model.pyramid_levels: must be an integer >= 1, not 0"]),
])
def test_what_the_pyramid_cannot_do_is_one_line(capsys, tmp_path, extra, needles):
    expect_one_line_error(capsys, fit_args(tmp_path, "--model.parametrization", "laplacian", *extra), *needles,
                          tmp_path=tmp_path, code=None)


def test_a_pyramid_run_resumes_bit_for_bit_and_a_pixels_checkpoint_is_refused(tmp_path, capsys):
    pyramid = ["--model.parametrization", "laplacian", "--model.pyramid_levels", "3"]
    main(run_args(tmp_path, "ImageLBFGS", 3, "first.png", *pyramid, "--trainer.enable_checkpointing", "true"))
    (ckpt,) = list(tmp_path.rglob("*.ckpt"))
    main(run_args(tmp_path, "ImageLBFGS", 6, "resumed.png", *pyramid, "--ckpt_path", str(ckpt)))
    main(run_args(tmp_path, "ImageLBFGS", 6, "uninterrupted.png", *pyramid))
    assert torch.equal(read_png(tmp_path / "resumed.png"), read_png(tmp_path / "uninterrupted.png"))
    expect_one_line_error(capsys, run_args(tmp_path, "ImageLBFGS", 6, "pixels.png", "--ckpt_path", str(ckpt)),
                          "--ckpt_path", "parametrization 'laplacian:3' (this run: 'pixels')", tmp_path=tmp_path)


def test_the_run_plan_counts_the_coefficients_vectors():
    """ImageLBFGS keeps 4 work vectors and 2 × 100 history vectors of the image's size; with the pyramid they hold
    up to 1.44 times as many values (17×17 px; 4/3 for even edges), counted as more state copies."""
    from nst_lightning.model.pyramid import COEFFICIENTS_PER_PIXEL
    from nst_lightning.model.style_transfer import StyleTransfer

    pixels = StyleTransfer(backbone=VGG19(weights="none")).optimizer_traits()
    pyramid = StyleTransfer(backbone=VGG19(weights="none"), parametrization="laplacian").optimizer_traits()
    assert (pixels.state_copies, pixels.history) == (4, 100)
    assert (pyramid.state_copies, pyramid.history) == (94, 100)  # ceil(204 × 1.44) = 294 vectors, 200 of them history
    worst = max(LaplacianPyramid(12).coefficient_count((1, 1, h, w)) / (h * w) for h in range(16, 80) for w in range(16, 80))
    assert 4 / 3 < worst <= COEFFICIENTS_PER_PIXEL
