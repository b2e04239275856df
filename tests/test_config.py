"""Code tests: the typed configuration fails loudly on a wrong setting, and the CLI says what to fix."""

from __future__ import annotations

import pytest

from training.config import ConfigError, TrainConfig, load_config
from training.paths import ROOT
from training.train import main


def test_bundled_config_file_is_the_default():
    assert load_config(ROOT / "configs" / "train.yaml") == TrainConfig()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"sectr": {"C": 1}}, "sectr"),
        ({"embedder": {"long_text": "everything"}}, "embedder.long_text"),
        ({"sector": {"C": -1}}, "sector.C"),
        ({"cv": {"folds": 1}}, "cv.folds"),
        ({"datasets": "/nonexistent"}, "datasets"),
    ],
)
def test_wrong_settings_are_rejected_with_their_name(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert fragment in str(err.value)


def test_config_file_errors_are_reported(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("embedder: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)


def test_train_command_exits_2_on_a_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  threshhold_grid: [0.5]\n")
    assert main(["--config", str(bad)]) == 2
    assert "topics.threshhold_grid" in capsys.readouterr().err
