"""A tiny random model for tests and smoke runs: a few seconds a step on a CPU."""

from rltf_jax.run.config_files import sibling_config


def get_config():
    config = sibling_config(__file__, "default")
    config.total_steps = 4
    config.max_train_minutes = 0.0
    config.model.name = "tiny-llama"
    config.data.problems_per_step = 2
    config.rollout.samples_per_problem = 2
    config.rollout.max_new_tokens = 16
    config.ppo.lr = 1e-3
    config.ppo.warmup_steps = 0
    config.ppo.grad_accum = 1
    config.ppo.compute_dtype = "float32"  # the tests' bounds are float32's
    config.ppo.length_groups = 1
    config.sandbox.workers = 1
    config.checkpoint.every = 2
    config.checkpoint.async_save = False
    config.eval.max_problems = 4
    config.eval.max_new_tokens = 16
    config.eval.batch_size = 4
    config.log.progress = False
    return config
