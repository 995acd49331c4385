"""A documented GPU/TPU config: RLTF on APPS with Qwen2.5-Coder-1.5B-Instruct (not run in this workspace).

Needs the hub (or a local copy) of `Qwen/Qwen2.5-Coder-1.5B-Instruct` and of the APPS dataset
(`codeparrot/apps`, or local jsonl files in its upstream format: `--config.data.train=apps:PATH`).
Sized for one host with 8 accelerators of ≥ 40 GB; hyperparameters follow RLTF (lr 2e-6, 4 s per
test, 20 samples per problem in the paper: 8 here with group advantages).
"""

from rltf_jax.run.config_files import sibling_config


def get_config():
    config = sibling_config(__file__, "default")
    config.total_steps = 2000
    config.model.name = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    config.model.dtype = "bfloat16"
    config.model.param_dtype = "float32"
    config.mesh.data = 1
    config.mesh.fsdp = -1
    config.data.train = "apps:train"
    config.data.heldout = "apps:test"
    config.data.problems_per_step = 32
    config.rollout.samples_per_problem = 8
    config.rollout.max_new_tokens = 512
    config.rollout.overlap_execution = True
    config.sandbox.workers = 64
    config.ppo.lr = 2e-6
    config.ppo.warmup_steps = 20
    config.ppo.num_minibatches = 4
    config.ppo.grad_accum = 4
    config.ppo.compute_dtype = "bfloat16"
    config.buffer.replay_samples = 0
    config.checkpoint.every = 50
    config.eval.every = 200
    config.eval.max_problems = 500
    config.eval.max_new_tokens = 512
    config.eval.batch_size = 64
    return config
