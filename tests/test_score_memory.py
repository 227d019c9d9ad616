"""``score`` checks the memory it needs from the files' headers before decoding anything, counting its tiles."""

from __future__ import annotations

import resource
import struct
import zlib
from pathlib import Path

import pytest

from nst_lightning.cli import main
from nst_lightning.cli import score as score_command
from nst_lightning.quality.scoring_memory import (
    TILE_PIXEL_BYTES,
    ScoreMemoryError,
    check_score_memory,
    declared_size,
    score_bytes,
)

from .conftest import CONTENT, STYLE
from .helpers import expect_one_line_error

GiB = 2**30


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A few bytes of PNG whose header declares ``width``×``height`` (its pixel data is missing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_a_small_file_declaring_a_huge_image_is_refused_before_it_is_decoded(tmp_path, capsys, monkeypatch):
    big = png_declaring(tmp_path / "big.png", 12000, 12000)
    assert big.stat().st_size < 100 and declared_size(big) == (12000, 12000)
    monkeypatch.setattr(score_command, "available_bytes", lambda device: 1 * GiB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = expect_one_line_error(capsys, ["score", str(big), "--content", str(CONTENT), "--style", str(STYLE)],
                                 f"score: the output {str(big)!r} declares 12000x12000 px: decoding it needs about "
                                 "1.1 GiB, but cpu has 1.0 GiB available; shrink the file first", tmp_path=tmp_path,
                                 code=2)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100, line  # nothing decoded
    # the content and style files are checked alike, each named by its option
    with pytest.raises(ScoreMemoryError, match=f"score: --style {str(big)!r} declares 12000x12000 px"):
        check_score_memory(1 * GiB, str(STYLE), str(CONTENT), [str(STYLE), str(big)])


def test_an_image_too_large_to_score_names_size_and_the_largest_that_fits(tmp_path, capsys, monkeypatch):
    """Decoding 12000×12000 fits in 8 GiB, scoring it at that size does not: the line names --size and the
    largest long edge that fits, which the estimate confirms."""
    big = png_declaring(tmp_path / "big.png", 12000, 12000)
    monkeypatch.setattr(score_command, "available_bytes", lambda device: 8 * GiB)
    line = expect_one_line_error(capsys, ["score", str(big), "--content", str(CONTENT), "--style", str(STYLE)],
                                 f"score: scoring {str(big)!r} at 12000x12000 px needs about ", tmp_path=tmp_path,
                                 code=2)
    fits = int(line.split("the largest that fits is --size ")[1])
    styles = [declared_size(STYLE)]
    assert 4000 < fits < 12000 and fits % 16 == 0
    assert score_bytes((12000, 12000), styles, fits) <= 8 * GiB < score_bytes((12000, 12000), styles, fits + 16)
    check_score_memory(8 * GiB, str(big), str(CONTENT), [str(STYLE)], long_edge=fits)  # no error


def test_images_larger_than_a_tile_are_counted_by_their_tiles(tmp_path):
    """4096 px scored by 768 px tiles needs about 2 GiB; its whole feature pass alone would take over 20 GiB."""
    large = png_declaring(tmp_path / "large.png", 4096, 4096)
    assert 4096 * 4096 * TILE_PIXEL_BYTES > 20 * GiB
    needed = score_bytes((4096, 4096), [(4096, 4096)])
    assert 1.5 * GiB < needed < 3 * GiB
    check_score_memory(3 * GiB, str(large), str(large), [str(large)])  # not refused
    assert score_bytes((4096, 4096), [(4096, 4096)], 1024) < score_bytes((4096, 4096), [(4096, 4096)])


def test_a_small_image_is_scored_under_the_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(score_command, "available_bytes", lambda device: 2 * GiB)
    main(["score", str(CONTENT), "--content", str(CONTENT), "--style", str(STYLE), "--size", "64"])
    assert "content 0 " in capsys.readouterr().out


def test_the_python_api_scores_under_the_same_check(tmp_path, monkeypatch):
    from nst_lightning import api

    big = png_declaring(tmp_path / "big.png", 12000, 12000)
    monkeypatch.setattr(api, "available_bytes", lambda device: 8 * GiB)
    with pytest.raises(ScoreMemoryError, match="the largest that fits is --size"):
        api.score(str(big), str(CONTENT), str(STYLE))
