"""The run's content and style images reach the logger once, at step 0, beside the final image; the logs of a tiny
run are read back from disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from nst_lightning.cli import main

from .conftest import CONTENT, STYLE, fit_args


class ImageFileLogger(CSVLogger):
    """Lightning's CSV logger that also takes images (as W&B's and MLflow's ``log_image`` do): each one a PNG in
    the log folder, ``images/<key>_<step>.png``."""

    def log_image(self, key: str, images: list, step: int | None = None) -> None:
        folder = Path(self.log_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for image in images:
            image.save(folder / f"{key.replace('/', '_')}_{step}.png")


def test_the_content_and_style_images_are_logged_once_with_the_final_image(tmp_path, capsys):
    logger = json.dumps({"class_path": f"{__name__}.ImageFileLogger", "init_args": {"save_dir": str(tmp_path)}})
    main(fit_args(tmp_path, "--trainer.max_steps", "3", "--trainer.logger", logger, "--data.size", "32",
                  "--data.style", json.dumps([str(STYLE), str(CONTENT)])))
    logs = Path(capsys.readouterr().out.strip().splitlines()[-1].split("logs: ")[1].split(";")[0])
    images = sorted(p.name for p in (logs / "images").iterdir())
    assert images == ["content_0.png", "final_3.png", "style_0_0.png", "style_1_0.png"], images
    with Image.open(logs / "images" / "content_0.png") as content, Image.open(CONTENT) as source:
        assert max(content.size) == 32  # the content as the run sees it: at --data.size
        expected = np.asarray(source.convert("RGB").resize(content.size, Image.Resampling.BICUBIC), dtype=float)
        assert np.abs(np.asarray(content, dtype=float) - expected).mean() < 8  # the same picture, resized
    with Image.open(logs / "images" / "style_0_0.png") as style:
        assert max(style.size) == 32
    with Image.open(logs / "images" / "final_3.png") as final, Image.open(tmp_path / "out.png") as written:
        assert np.array_equal(np.asarray(final), np.asarray(written.convert("RGB")))  # the image the run wrote
    rows = list(csv.DictReader(open(logs / "metrics.csv")))
    assert {int(r["step"]) for r in rows if r.get("loss/total")} >= {1, 3}



def test_tensorboard_gets_the_inputs_the_config_as_hparams_and_losses_with_metrics(tmp_path, capsys):
    """TensorBoard's event file of a tiny run: the content, style and final images; the run's config in the HPARAMS
    tab (one session with every key, not an empty one); the losses at step 1 and the last, where the metrics are."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    logger = json.dumps({"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                         "init_args": {"save_dir": str(tmp_path)}})
    main(fit_args(tmp_path, "--trainer.max_steps", "3", "--trainer.logger", logger, "--data.size", "32"))
    logs = Path(capsys.readouterr().out.strip().splitlines()[-1].split("logs: ")[1].split(";")[0])
    (events,) = logs.glob("events.out.tfevents*")
    images, scalars, sessions = set(), {}, []
    for event in EventFileLoader(str(events)).Load():
        for value in event.summary.value:
            if value.tag == "_hparams_/session_start_info":
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                sessions.append(dict(data.session_start_info.hparams))
            elif value.metadata.plugin_data.plugin_name == "images" or value.HasField("image"):
                images.add(value.tag)
            else:
                scalars.setdefault(value.tag, set()).add(event.step)
    assert {"content", "style/0", "final"} <= images, images
    assert len(sessions) == 1 and sessions[0]["data.size"].number_value == 32, sessions
    assert {1, 3} <= scalars["loss/total"] and 3 in scalars["metric/style_distance"], scalars
