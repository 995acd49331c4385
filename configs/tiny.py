"""A tiny random model for tests and smoke runs: a few seconds a step on a CPU."""

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
    config.total_steps = 4
    config.model.name = "tiny-llama"
    config.data.problems_per_step = 2
    config.rollout.samples_per_problem = 2
    config.rollout.max_new_tokens = 16
    config.ppo.lr = 1e-3
    config.ppo.warmup_steps = 0
    config.ppo.grad_accum = 1
    config.sandbox.workers = 1
    config.checkpoint.every = 2
    config.checkpoint.async_save = False
    config.eval.max_problems = 4
    config.eval.max_new_tokens = 16
    config.eval.batch_size = 4
    config.log.progress = False
    return config
