"""Bad input: every case gets one line that names the file or key, a non-zero exit and no output file;
inputs that can reasonably be used (grayscale, alpha, palette, CMYK, 16-bit, EXIF-rotated, 1x1) are used.

The broken files are generated here, in tmp_path. Runs that are expected to fail use random backbone
weights (``weights: none``), which fail the same way and start faster.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.cli import main
from nst_lightning.cli.run_checks import check_checkpoint
from nst_lightning.files import RunFiles
from nst_lightning.image import io as image_io
from nst_lightning.image.io import load_image

from .conftest import ASSETS
from .helpers import expect_one_line_error, quiet_args

RED, BLUE = (255, 0, 0), (0, 0, 255)


# -- files the tests make ---------------------------------------------------------------------


def jpeg_bytes(size=(48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_mandelbrot(size, (-2, -1, 1, 1), 50).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(size=(48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_mandelbrot(size, (-2, -1, 1, 1), 50).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def make_bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / {"missing": "missing.jpg", "directory": "a_directory.jpg", "zero_byte": "empty.jpg",
                       "truncated_jpeg": "truncated.jpg", "truncated_png": "truncated.png",
                       "corrupt_png": "corrupt.png", "text_as_jpg": "notes.jpg", "too_thin": "thin.png",
                       "fifo": "pipe.png"}[kind]
    if kind == "directory":
        path.mkdir()
    elif kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "truncated_jpeg":
        path.write_bytes(jpeg_bytes()[:600])
    elif kind == "truncated_png":
        path.write_bytes(png_bytes()[:200])
    elif kind == "corrupt_png":  # complete length, but the image data is overwritten
        data = bytearray(png_bytes())
        data[60:-20] = bytes(len(data) - 80)
        path.write_bytes(bytes(data))
    elif kind == "text_as_jpg":
        path.write_text("these are my holiday notes, not a photograph\n")
    elif kind == "too_thin":
        Image.new("RGB", (400, 4), RED).save(path)
    elif kind == "fifo":  # reading it would wait for a writer forever
        os.mkfifo(path)
    return path


BAD_FILES = {
    "missing": "does not exist",
    "directory": "is a directory",
    "zero_byte": "is an empty file",
    "truncated_jpeg": "truncated or corrupt",
    "truncated_png": "truncated or corrupt",
    "corrupt_png": "truncated or corrupt",
    "text_as_jpg": "not an image file",
    "too_thin": "short edge is 1 px",
    "fifo": "is not a regular file",
}


@pytest.mark.parametrize(
    ("kind", "role"), [(kind, "content") for kind in BAD_FILES] + [("missing", "style"), ("truncated_jpeg", "style")]
)
def test_bad_image_file(tmp_path, capsys, kind, role):
    path = make_bad_file(tmp_path, kind)
    expect_one_line_error(capsys, quiet_args(tmp_path, f"--data.{role}", str(path)), f"{role} image", str(path),
                          BAD_FILES[kind], tmp_path=tmp_path, code=1)


def test_decompression_bomb_suggests_data_size(tmp_path, capsys, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (64, 64), RED).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images over twice this
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--data.content", str(path)), str(path), "too large",
                                 "--data.size", tmp_path=tmp_path, code=1)
    assert "4096 pixels" in line


BAD_CONFIG = {
    "negative_weight": (["--model.losses.style.init_args.weight", "-1"], ["GramStyleLoss", "weight", "-1"], 1),
    "non_numeric_weight": (["--model.losses.content.init_args.weight", "heavy"],
                           ["model.losses.content.init_args.weight", "expected float", "heavy"], 2),
    "nan_weight": (["--model.losses.tv.init_args.weight", "nan"], ["model.losses.tv.init_args.weight", "nan"], 2),
    "size_zero": (["--data.size", "0"], ["data.size", "at least 16"], 1),
    "size_not_a_number": (["--data.size", "big"], ["data.size", "expected int", "big"], 2),
    "unknown_layer": (["--model.losses.style.init_args.layers", "[relu1_1, relu9_9]"], ["relu9_9", "VGG19"], 1),
    "unknown_optimizer": (["--model.optimizer", "ImageBFGS"], ["model.optimizer", "ImageBFGS"], 2),
    "unknown_loss": (["--model.losses.style.class_path", "GramStyleLos"], ["model.losses", "GramStyleLos"], 2),
    "unknown_backbone": (["--model.backbone", "VGG91"], ["model.backbone", "VGG91"], 2),
    "unknown_option": (["--data.sizee", "64"], ["--data.sizee"], 2),
    "empty_style_list": (["--data.style", "[]"], ["data.style", "at least one style image"], 1),
    "blend_weights_count": (["--data.style_blend_weights", "[1, 2]"], ["data.style_blend_weights", "2 values"], 1),
    "negative_blend_weight": (["--data.style_blend_weights", "[-1]"], ["data.style_blend_weights", ">= 0"], 1),
    "missing_init_image": (["--model.init", "nowhere.png"], ["model.init", "nowhere.png"], 1),
    "mask_and_style_counts_differ": (
        ["--data.masks", f"[{ASSETS / 'mask_left.png'}, {ASSETS / 'mask_right.png'}]"],
        ["data.masks", "2 mask images for 1 style images"],
        1,
    ),
    "output_not_png": (["--output", "out/out.jpg"], ["--output", ".png"], 1),
    # Values that are infinite, negative or absurd: refused before the run, naming the key.
    "infinite_blend_weight": (["--data.style_blend_weights", "[.inf]"], ["data.style_blend_weights", "finite"], 1),
    "absurd_style_scale": (["--data.style_scale", "3000"], ["data.style_scale", "(0, 10]"], 1),
    "negative_snapshot_every": (["--snapshot_every", "-1"], ["--snapshot_every", ">= 0"], 1),
    "negative_score_every": (["--score_every", "-3"], ["--score_every", ">= 0"], 1),
    "infinite_memory_budget": (["--model.tiling.memory_budget", "inf"], ["model.tiling.memory_budget"], 2),
}


@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_bad_config_value(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    extra, needles, code = BAD_CONFIG[case]
    expect_one_line_error(capsys, quiet_args(tmp_path, *extra), *needles, tmp_path=tmp_path, code=code)


@pytest.mark.parametrize("how", ["the_content", "a_link_to_the_style"])
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path, capsys, how):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.new("RGB", (40, 32), RED).save(content)
    Image.new("RGB", (40, 32), (0, 0, 255)).save(style)
    before = content.read_bytes(), style.read_bytes()
    output = content if how == "the_content" else tmp_path / "link.png"
    if how == "a_link_to_the_style":
        output.symlink_to(style)
    expect_one_line_error(capsys, quiet_args(tmp_path, "--data.content", str(content), "--data.style", str(style),
                                             "--output", str(output), "--overwrite", "true"),
                          "--output", "is also an input of this run", tmp_path=tmp_path, code=2)
    assert (content.read_bytes(), style.read_bytes()) == before and not (tmp_path / f"{output.stem}.run").exists()


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output_directory_is_found_before_the_run(tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("not a directory")
    output = tmp_path / "a_file" / "sub" / "out.png" if where == "under_a_file" else Path("/proc/self/nst/out.png")
    # The backbone's real weights: the check comes before the run, so no run time is spent.
    expect_one_line_error(capsys, quiet_args(tmp_path, "--output", str(output), weights="caffe"),
                          "--output", str(output.parent), tmp_path=tmp_path, code=1)
    assert not output.parent.exists() or where == "proc"


@pytest.mark.parametrize("kind", ["python_object_tag", "broken_yaml", "missing_file"])
def test_config_files_are_safe_loaded(tmp_path, capsys, kind):
    config = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    if kind == "python_object_tag":
        config.write_text(f"model:\n  init: !!python/object/apply:os.system ['touch {marker}']\n")
    elif kind == "broken_yaml":
        config.write_text("data: {content: [\n")
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--config", str(config)), str(config),
                                 tmp_path=tmp_path, code=2)
    assert not marker.exists()
    if kind == "python_object_tag":
        assert "python/object" in line


@pytest.mark.parametrize(("content", "found"), [("", "is empty"), ("\n# nothing here\n", "is empty"),
                                              ("- 1\n- 2\n", "is a YAML list"), ("just words\n", "is a YAML str")])
def test_a_config_file_must_be_a_mapping(tmp_path, capsys, content, found):
    config = tmp_path / "config.yaml"
    config.write_text(content)
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--config", str(config)), tmp_path=tmp_path, code=2)
    assert line == (f"nst-lightning: error: config {str(config)!r} {found}; a config must be a YAML mapping of keys "
                    "such as 'trainer:', 'model:', 'data:' (see configs/default.yaml)")


def test_zero_steps_are_refused(tmp_path, capsys):
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--trainer.max_steps", "0"), tmp_path=tmp_path, code=2)
    assert line.startswith("nst-lightning: error: trainer.max_steps: 0 steps would write no image")
    # Under -1 Lightning's Trainer would refuse it first, as a MisconfigurationException without the key.
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--trainer.max_steps", "-5"), tmp_path=tmp_path, code=2)
    assert line.startswith("nst-lightning: error: trainer.max_steps: must be a number of steps >= 1") and "-5" in line


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("lr", "nan", "model.optimizer.lr: expected float, got nan"),
    ("lrr", "1", "model.optimizer.lrr: Option 'lrr' is not accepted"),
])
def test_an_optimizer_argument_is_named_without_jsonargparse_types(tmp_path, capsys, key, value, expected):
    line = expect_one_line_error(capsys, quiet_args(tmp_path, f"--model.optimizer.init_args.{key}", value),
                                 tmp_path=tmp_path, code=2)
    assert line == f"nst-lightning: error: {expected}"  # not "Type typing.Callable[...] expects a function ..."


def test_an_out_of_range_seed_names_its_key(tmp_path, capsys):
    expect_one_line_error(capsys, quiet_args(tmp_path, "--seed_everything", "-1"), "seed_everything: -1 is not in bounds",
                          tmp_path=tmp_path, code=1)


@pytest.mark.parametrize("kind", ["five_byte_text", "jpeg", "zip_without_data", "directory", "missing"])
def test_ckpt_path_that_is_not_a_checkpoint(tmp_path, capsys, kind):
    path = tmp_path / {"jpeg": "photo.jpg", "zip_without_data": "a.zip"}.get(kind, "run.ckpt")
    if kind == "five_byte_text":
        path.write_text("hello")
    elif kind == "jpeg":
        path.write_bytes(jpeg_bytes())
    elif kind == "zip_without_data":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not a checkpoint")
    elif kind == "directory":
        path.mkdir()
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--ckpt_path", str(path)), f"--ckpt_path {str(path)!r}",
                                 tmp_path=tmp_path, code=2)
    expected = {"directory": "is a directory, not a checkpoint", "missing": "does not exist"}.get(kind, "is not a checkpoint")
    assert expected in line and "weights_only" not in line


def test_a_real_checkpoint_passes_the_check(tmp_path):
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": {}}, path)
    check_checkpoint(path)  # no error
    check_checkpoint("last")  # Lightning's own names are Lightning's to resolve


def test_permission_denied_is_said(tmp_path, capsys, monkeypatch):
    path = tmp_path / "private.png"
    path.write_bytes(png_bytes())

    def denied(fp, *a, **k):
        raise PermissionError(13, "Permission denied", str(fp))

    monkeypatch.setattr(Image, "open", denied)  # root may read anything, so the refusal is simulated
    expect_one_line_error(capsys, quiet_args(tmp_path, "--data.content", str(path)),
                          f"content image {str(path)!r} cannot be read: permission denied", tmp_path=tmp_path, code=1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied_is_said_for_a_real_file(tmp_path, capsys):
    path = tmp_path / "private.png"
    path.write_bytes(png_bytes())
    path.chmod(0)
    expect_one_line_error(capsys, quiet_args(tmp_path, "--data.content", str(path)), "permission denied",
                          tmp_path=tmp_path, code=1)


def test_a_png_with_a_huge_icc_profile_is_read(tmp_path, capsys, monkeypatch):
    path = tmp_path / "profiled.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(path, icc_profile=bytes(30 * 2**20))  # 30 MiB of profile
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):
        Image.open(path).load()  # what Pillow alone does
    image = load_image(path)
    assert image.shape == (1, 3, 30, 40)
    assert (image[0, :, 0, 0] * 255).round().tolist() == [10, 200, 30]
    monkeypatch.setattr(image_io, "METADATA_LIMIT", 2**20)  # a profile beyond the bound: say what the limit is
    expect_one_line_error(capsys, quiet_args(tmp_path, "--data.content", str(path)), str(path),
                          "decompresses to over 1 MiB, the limit here", tmp_path=tmp_path, code=1)


# mode -> (what the array holds, its dtype) -> expected 8-bit gray of (the left half, the right half)
FLOAT_CASES = {
    "F_0_1": ("F", "float32", (0.25, 0.75), (64, 191)),
    "F_0_255": ("F", "float32", (64.0, 191.0), (64, 191)),
    "F_0_65535": ("F", "float32", (16448.0, 49087.0), (64, 191)),
    "F_negative": ("F", "float32", (-1.0, 1.0), (0, 255)),
    "F_huge": ("F", "float32", (1e6, 4e6), (0, 255)),
    "I_0_255": ("I", "int32", (64, 191), (64, 191)),
    "I_0_65535": ("I", "int32", (16448, 49087), (64, 191)),
    "I_beyond_16_bit": ("I", "int32", (100_000, 400_000), (0, 255)),
    "I_negative": ("I", "int32", (-50, 50), (0, 255)),
    "I;16_0_65535": ("I;16", "uint16", (16448, 49087), (64, 191)),
    "I;16_dark": ("I;16", "uint16", (0, 255), (0, 1)),
}


def make_high_depth(tmp_path: Path, case: str) -> Path:
    mode, dtype, (left, right), _ = FLOAT_CASES[case]
    array = np.full((30, 40), left, dtype=dtype)
    array[:, 20:] = right
    image = Image.fromarray(array) if mode == "I;16" else Image.fromarray(array, mode=mode)
    assert image.mode == mode
    path = tmp_path / f"{case.replace(';', '')}.{'png' if mode == 'I;16' else 'tif'}"
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode == mode
    return path


@pytest.mark.parametrize("case", list(FLOAT_CASES))
def test_float_and_32_bit_images_are_scaled_by_their_range(tmp_path, case):
    expected = FLOAT_CASES[case][3]
    image = load_image(make_high_depth(tmp_path, case))
    gray = (image[0] * 255).round()
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # gray
    assert (gray[0, 0, 0].item(), gray[0, -1, -1].item()) == expected


def test_a_float_image_is_not_blacked_out_end_to_end(tmp_path):
    main(quiet_args(tmp_path, "--data.content", str(make_high_depth(tmp_path, "F_0_1")), "--trainer.max_steps", "1"))
    out = np.asarray(Image.open(tmp_path / "out" / "out.png").convert("L"), dtype=float)
    assert out[:, :8].mean() == pytest.approx(64, abs=12) and out[:, -8:].mean() == pytest.approx(191, abs=12)


def test_a_float_image_with_nan_is_refused(tmp_path, capsys):
    array = np.full((30, 40), 0.5, dtype="float32")
    array[3, 3] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(array, mode="F").save(path)
    expect_one_line_error(capsys, quiet_args(tmp_path, "--data.content", str(path)), str(path),
                          "has NaN or infinite pixel values", tmp_path=tmp_path, code=1)


def test_parse_errors_are_one_line_but_help_still_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--trainer.max_steps", "ten"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainer.max_steps" in err and "usage" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "fit" in capsys.readouterr().out


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*quiet_args(tmp_path, "--data.content", str(tmp_path / "missing.jpg")), "--debug"])
    assert "Traceback" in capsys.readouterr().err


# -- inputs that work ----------------------------------------------------------------------------


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def make_usable(tmp_path: Path, kind: str) -> Path:
    """Images that work: each has a known pixel value to check after loading."""
    p = tmp_path / f"{kind}.png"
    if kind == "grayscale":
        return save(Image.new("L", (40, 30), 100), p)
    if kind == "rgba":  # left half opaque red, right half fully transparent
        image = Image.new("RGBA", (40, 30), (255, 0, 0, 255))
        image.paste((0, 0, 255, 0), (20, 0, 40, 30))
        return save(image, p)
    if kind == "gray_alpha":
        return save(Image.new("LA", (40, 30), (0, 0)), p)
    if kind in ("palette", "palette_transparent"):
        image = Image.new("P", (40, 30), 0)
        image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
        image.paste(1, (20, 0, 40, 30))
        return save(image, p, **({"transparency": 1} if kind == "palette_transparent" else {}))
    if kind == "cmyk":
        return save(Image.new("CMYK", (40, 30), (255, 0, 0, 0)), tmp_path / "cmyk.jpg", quality=100)
    if kind == "16bit":  # a 16-bit PNG: left half at 65535, right half at 32768
        array = np.full((30, 40), 65535, dtype=np.uint16)
        array[:, 20:] = 32768
        return save(Image.fromarray(array), p)
    if kind == "exif_rotated":  # stored 40 wide, 20 high; EXIF 6: show it turned 90 degrees clockwise
        image = Image.new("RGB", (40, 20), RED)
        image.paste(BLUE, (20, 0, 40, 20))
        exif = Image.Exif()
        exif[0x0112] = 6
        return save(image, tmp_path / "exif_rotated.jpg", exif=exif, quality=100)
    if kind == "one_pixel":
        return save(Image.new("RGB", (1, 1), (10, 200, 30)), p)
    raise ValueError(kind)


# kind -> (the loaded image's H, W at its natural size, its top-left pixel, its bottom-right pixel), 0-255
USABLE = {
    "grayscale": ((30, 40), (100, 100, 100), (100, 100, 100)),
    "rgba": ((30, 40), RED, (255, 255, 255)),  # alpha is composited over white
    "gray_alpha": ((30, 40), (255, 255, 255), (255, 255, 255)),
    "palette": ((30, 40), RED, BLUE),
    "palette_transparent": ((30, 40), RED, (255, 255, 255)),
    "cmyk": ((30, 40), (0, 255, 255), (0, 255, 255)),
    "16bit": ((30, 40), (255, 255, 255), (127, 127, 127)),  # scaled from 0-65535
    "exif_rotated": ((40, 20), RED, BLUE),  # turned upright: the red left half is now on top
    "one_pixel": ((1, 1), (10, 200, 30), (10, 200, 30)),
}


@pytest.mark.parametrize("kind", list(USABLE))
def test_usable_image_modes_load(tmp_path, kind):
    (h, w), top_left, bottom_right = USABLE[kind]
    image = load_image(make_usable(tmp_path, kind))
    assert image.shape == (1, 3, h, w) and image.dtype == torch.float32
    pixels = (image[0] * 255).round()
    tolerance = 3 if kind in ("exif_rotated", "cmyk") else 1  # JPEG
    assert (pixels[:, 0, 0] - torch.tensor(top_left)).abs().max() <= tolerance
    assert (pixels[:, -1, -1] - torch.tensor(bottom_right)).abs().max() <= tolerance


def test_every_usable_mode_runs_end_to_end(tmp_path, capsys):
    """The EXIF-rotated photo as content (the output is upright), every other mode as a style image."""
    styles = [str(make_usable(tmp_path, kind)) for kind in USABLE if kind != "exif_rotated"]
    content = make_usable(tmp_path, "exif_rotated")
    main(quiet_args(tmp_path, "--data.content", str(content), "--data.style", yaml.safe_dump(styles, default_flow_style=True)))
    out = Image.open(tmp_path / "out" / "out.png")
    assert out.size == (16, 32)  # upright: 16 wide, 32 high at --data.size 32
    array = np.asarray(out.convert("RGB"), dtype=float)
    assert array[:12, :, 0].mean() > array[:12, :, 2].mean() + 50  # red on top, after one step
    assert array[-12:, :, 2].mean() > array[-12:, :, 0].mean() + 50  # blue below


def test_one_pixel_content_is_upscaled(tmp_path):
    """A 1x1 image works: it is upscaled to --data.size, a flat colour."""
    main(quiet_args(tmp_path, "--data.content", str(make_usable(tmp_path, "one_pixel"))))
    assert Image.open(tmp_path / "out" / "out.png").size == (32, 32)


# -- names built from --output stay in its directory -----------------------------------------------


@pytest.mark.parametrize("output", ["out.png", "a/b/out.png", "../up/out.png", "a/../b/.png", "/abs/x.y.png"])
def test_every_file_a_run_writes_is_beside_the_output_or_in_its_run_folder(output):
    files = RunFiles(output)
    out = Path(output)
    assert files.folder == out.with_name(out.stem + ".run") and files.lock.parent == out.parent
    inside = [files.checkpoint, files.interrupted_image, files.interrupted_checkpoint, files.last_good,
              files.snapshot(10), files.snapshot(123456), files.kept_image()]
    assert all(path.parent == files.folder for path in inside)
    assert len({path.name for path in inside}) == len(inside)


def test_a_missing_input_is_reported_before_an_output_that_exists(tmp_path, capsys):
    """Re-running a command whose output exists, with a content image that is gone: the missing image is what
    the user must fix first, so that is the error."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "out.png").write_bytes(b"a user's file")
    with pytest.raises(SystemExit):
        main(quiet_args(tmp_path, "--data.content", str(tmp_path / "gone.jpg")))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "gone.jpg" in line and "does not exist" in line, line
    assert (tmp_path / "out" / "out.png").read_bytes() == b"a user's file"
    with pytest.raises(SystemExit):
        main(quiet_args(tmp_path))
    assert "exists; pass --overwrite true" in capsys.readouterr().err


def test_a_config_is_bounded_before_it_is_loaded(tmp_path, capsys):
    """A 'billion laughs' YAML (450 bytes, 10⁹ values through aliases) and a config of 2 MiB are refused at once,
    naming the file, before any of it is expanded or parsed."""
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        laughs.append(f"{level}: &{level} [*{previous},*{previous},*{previous},*{previous},*{previous},"
                      f"*{previous},*{previous},*{previous},*{previous}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(laughs) + "\n")
    expect_one_line_error(capsys, quiet_args(tmp_path, "--config", str(bomb)), "bomb.yaml", "YAML aliases",
                          tmp_path=tmp_path, code=2)
    big = tmp_path / "big.yaml"
    big.write_text("trainer:\n  max_steps: 1\n" + "#" * (2 << 20) + "\n")
    expect_one_line_error(capsys, quiet_args(tmp_path, "--config", str(big)), "big.yaml", "at most 1 MiB",
                          tmp_path=tmp_path, code=2)


@pytest.mark.parametrize(("extra", "suggestion"), [
    (["--data.sizee", "64"], "(did you mean --data.size?)"),
    (["--model.losses.style.init_args.wieght", "3"], "(did you mean 'weight'?)"),
])
def test_a_misspelt_key_gets_a_did_you_mean(tmp_path, capsys, extra, suggestion):
    line = expect_one_line_error(capsys, quiet_args(tmp_path, *extra), suggestion, tmp_path=tmp_path, code=2)
    assert line.count("did you mean") == 1


def test_an_output_name_too_long_for_the_files_beside_it_is_refused_before_the_run(tmp_path, capsys):
    """A 244-byte --output passes the filesystem's 255, but the temporary name it is written under first
    (``.<name>.XXXXXXXX.tmp``) does not: refused at start, naming --output and the name that would fit."""
    name = "x" * 240 + ".png"  # 244 bytes
    line = expect_one_line_error(capsys, quiet_args(tmp_path, "--output", str(tmp_path / "out" / name),
                                                    "--snapshot_every", "1"),
                                 "--output", "this filesystem allows 255", "give a name of at most",
                                 tmp_path=tmp_path, code=1)
    fits = int(line.split("give a name of at most ")[1].split()[0])
    main(quiet_args(tmp_path, "--output", str(tmp_path / "out" / ("y" * (fits - 4) + ".png")), "--snapshot_every", "1"))
    assert (tmp_path / "out" / ("y" * (fits - 4) + ".png")).is_file()
