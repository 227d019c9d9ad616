"""Bad input: every case gets one line that names the file or key, a non-zero exit and no output file;
inputs that can reasonably be used (grayscale, alpha, palette, CMYK, 16-bit, EXIF-rotated, 1x1) are used.

The broken files are generated here, in tmp_path. Runs that are expected to fail use random backbone
weights (``weights: none``), which fail the same way and start faster.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.cli import main
from nst_lightning.files import beside
from nst_lightning.image.io import load_image

from .conftest import ASSETS, CONTENT, ROOT, STYLE

DEFAULT = ROOT / "configs" / "single_scale.yaml"  # fixed length, one scale: the tests' runs
RED, BLUE = (255, 0, 0), (0, 0, 255)


def args(tmp_path: Path, *extra: str, weights: str = "none") -> list[str]:
    return [
        "fit", "--config", str(DEFAULT),
        "--data.content", str(CONTENT), "--data.style", str(STYLE),
        "--data.size", "32", "--trainer.max_steps", "1",
        "--model.backbone.init_args.weights", weights,
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--output", str(tmp_path / "out" / "out.png"),
        *extra,
    ]


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
                       "corrupt_png": "corrupt.png", "text_as_jpg": "notes.jpg", "too_thin": "thin.png"}[kind]
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
}


def expect_one_line_error(capsys, argv: list[str], *needles: str, tmp_path: Path, code: int | None = None) -> str:
    """Runs ``main(argv)`` and checks the contract: non-zero exit, one line, no traceback, no output."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nst-lightning:")]
    assert exit_info.value.code not in (0, None), err
    if code is not None:
        assert exit_info.value.code == code, err
    assert len(lines) == 1 and lines[0].startswith("nst-lightning: error: "), err
    assert "Traceback" not in err and "usage:" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    return lines[0]


@pytest.mark.parametrize(
    ("kind", "role"), [(kind, "content") for kind in BAD_FILES] + [("missing", "style"), ("truncated_jpeg", "style")]
)
def test_bad_image_file(tmp_path, capsys, kind, role):
    path = make_bad_file(tmp_path, kind)
    expect_one_line_error(capsys, args(tmp_path, f"--data.{role}", str(path)), f"{role} image", str(path),
                          BAD_FILES[kind], tmp_path=tmp_path, code=1)


def test_decompression_bomb_suggests_data_size(tmp_path, capsys, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (64, 64), RED).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images over twice this
    line = expect_one_line_error(capsys, args(tmp_path, "--data.content", str(path)), str(path), "too large",
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
}


@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_bad_config_value(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    extra, needles, code = BAD_CONFIG[case]
    expect_one_line_error(capsys, args(tmp_path, *extra), *needles, tmp_path=tmp_path, code=code)


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output_directory_is_found_before_the_run(tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("not a directory")
    output = tmp_path / "a_file" / "sub" / "out.png" if where == "under_a_file" else Path("/proc/self/nst/out.png")
    # The backbone's real weights: the check comes before the run, so no run time is spent.
    expect_one_line_error(capsys, args(tmp_path, "--output", str(output), weights="caffe"),
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
    line = expect_one_line_error(capsys, args(tmp_path, "--config", str(config)), str(config),
                                 tmp_path=tmp_path, code=2)
    assert not marker.exists()
    if kind == "python_object_tag":
        assert "python/object" in line


def test_parse_errors_are_one_line_but_help_still_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.content" in err and "usage" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "fit" in capsys.readouterr().out


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*args(tmp_path, "--data.content", str(tmp_path / "missing.jpg")), "--debug"])
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
    main(args(tmp_path, "--data.content", str(content), "--data.style", yaml.safe_dump(styles, default_flow_style=True)))
    out = Image.open(tmp_path / "out" / "out.png")
    assert out.size == (16, 32)  # upright: 16 wide, 32 high at --data.size 32
    array = np.asarray(out.convert("RGB"), dtype=float)
    assert array[:12, :, 0].mean() > array[:12, :, 2].mean() + 50  # red on top, after one step
    assert array[-12:, :, 2].mean() > array[-12:, :, 0].mean() + 50  # blue below


def test_one_pixel_content_is_upscaled(tmp_path):
    """A 1x1 image works: it is upscaled to --data.size, a flat colour."""
    main(args(tmp_path, "--data.content", str(make_usable(tmp_path, "one_pixel"))))
    assert Image.open(tmp_path / "out" / "out.png").size == (32, 32)


# -- names built from --output stay in its directory -----------------------------------------------


@pytest.mark.parametrize("output", ["out.png", "a/b/out.png", "../up/out.png", "a/../b/.png", "/abs/x.y.png"])
@pytest.mark.parametrize("suffix", ["_step00010.png", "_interrupted.png", "_interrupted.ckpt", "_last_good.png"])
def test_derived_names_stay_beside_the_output(output, suffix):
    derived = beside(output, suffix)
    assert derived.parent == Path(output).parent
    assert derived.name == Path(output).stem + suffix


@pytest.mark.parametrize("suffix", ["/../../etc/passwd", "_../x.png", "\\..\\x.png"])
def test_derived_names_cannot_name_a_directory(suffix):
    with pytest.raises(ValueError, match="may not contain a path"):
        beside("out/out.png", suffix)
