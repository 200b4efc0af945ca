"""Config files: TOML and YAML, with errors that name the bad field."""

from __future__ import annotations

import pytest

from coursecorrect.config import apply_overrides, dump_config, load_config
from coursecorrect.envs import EnvConfig
from coursecorrect.errors import ConfigError


@pytest.mark.parametrize(
    ("filename", "text"),
    [("env.toml", 'name = "textcraft"\nmax_steps = 20\n[options]\nseed = 3\n'),
     ("env.yaml", "name: textcraft\nmax_steps: 20\noptions:\n  seed: 3\n")],
)
def test_load_toml_and_yaml(tmp_path, filename, text):
    path = tmp_path / filename
    path.write_text(text)
    config = load_config(EnvConfig, path)
    assert config == EnvConfig(name="textcraft", max_steps=20, options={"seed": 3})
    env = config.make()
    assert env.max_steps == 20 and env.seed == 3


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("a.toml", "max_steps = 'many'\n", r"a\.toml: max_steps: Input should be a valid integer.*'many'"),
        ("a.toml", "max_steps = 0\n", r"max_steps: Input should be greater than or equal to 1"),
        ("a.toml", "max_step = 5\n", r"max_step: unknown field"),
        ("a.toml", "name = 'textcraf'\n", r"name: unknown env 'textcraf'\. Did you mean 'textcraft'\?"),
        ("a.toml", "name = [\n", r"a\.toml: not valid TOML"),
        ("a.yaml", "name: [unclosed\n", r"a\.yaml: not valid YAML"),
        ("a.yaml", "- just\n- a list\n", r"top level must be a mapping"),
        ("a.json", "{}", r"must end in \.toml, \.yaml or \.yml"),
        ("a.toml", "options = 3\nmax_steps = -1\n", r"max_steps: .*; options: "),
    ],
)
def test_malformed_configs_name_the_problem(tmp_path, filename, text, message):
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(EnvConfig, path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(EnvConfig, tmp_path / "nope.toml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(EnvConfig, empty) == EnvConfig()


def test_dump_round_trips(tmp_path):
    config = EnvConfig(max_steps=7, options={"seed": 1})
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert load_config(EnvConfig, path) == config


def test_apply_overrides_sets_only_given_values():
    data = {"agent": {"batch_size": 4}, "split": "test"}
    assert apply_overrides(data, {"agent.batch_size": 8, "agent.seed": None, "model.model": "x", "split": None}) == {
        "agent": {"batch_size": 8}, "split": "test", "model": {"model": "x"},
    }
