"""Every shipped config under configs/ loads and maps onto the typed configs the trainer builds."""

import glob
import os

import pytest

from rltf_jax.run.config_files import load_config_file
from rltf_jax.ppo import PPOConfig
from rltf_jax.rewards import RewardConfig
from rltf_jax.rewards.rlef import RLEFRewardConfig
from rltf_jax.rollout.methods import METHODS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def test_the_configs_directory_is_not_empty():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {"default.py", "rlef.py", "rlef_revise.py", "tiny.py"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_the_trainer_typed_configs(path):
    config = load_config_file(path)
    assert config.method in METHODS
    # what Trainer.__init__ builds from it: an unknown or misspelled key raises TypeError here
    PPOConfig(**{"temperature": config.rollout.temperature, **config.ppo.to_dict()})
    RewardConfig(**config.rewards.to_dict())
    RLEFRewardConfig(**config.rlef.rewards.to_dict())


def test_rlef_revise_is_rlef_plus_the_resubmission_penalty():
    rlef = load_config_file(os.path.join(ROOT, "configs", "rlef.py")).to_dict()
    revise = load_config_file(os.path.join(ROOT, "configs", "rlef_revise.py")).to_dict()
    assert revise["rlef"]["rewards"].pop("repeated_code") == -0.5
    assert rlef["rlef"]["rewards"].pop("repeated_code") == 0.0
    assert revise == rlef
