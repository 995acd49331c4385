"""RLEF on the starter set: multi-turn episodes (up to 3 replies, public-test feedback between them),
rewarded +1 / -1 on private tests and -0.2 per reply without code; PPO with a KL penalty to the
initial policy (Gehring et al. 2024)."""

import importlib.util
import os


def _default():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py")
    spec = importlib.util.spec_from_file_location("rltf_configs_default", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config():
    config = _default().get_config()
    config.method = "rlef"
    config.rlef.max_turns = 3
    config.ppo.kl_coef = 0.05
    return config
