"""The learning benchmark (benchmarks/learning.py): training on the starter set within a time budget.

The embedded default with a wall-clock budget instead of a step count: 60 minutes of training on
this 2-core CPU (evaluation excluded). benchmarks/learning.py trains its arms (full RLTF, coarse,
fine-grained, RLTF's own objective, supervised, supervised then RLTF) from this config and
evaluates them itself on starter:unseen, starter:heldout and HumanEval.
"""

from rltf_jax.run.config_files import sibling_config


def get_config():
    config = sibling_config(__file__, "default")
    config.total_steps = 1000            # the budget ends the run first
    config.max_train_minutes = 60.0
    config.ppo.lr = 1e-5                 # the default's; pinned so the experiment does not drift
    # a stopped arm resumes from its last checkpoint, losing at most the 5 steps since
    config.checkpoint.every = 5
    config.eval.every = 0
    return config
