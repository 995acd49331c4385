"""The learning experiment (benchmarks/learning.py): RLTF on the starter set within a time budget.

The embedded default with a wall-clock budget instead of a step count: 60 minutes of training on
this 2-core CPU (evaluation excluded), held-out pass@1 measured before and after.
benchmarks/learning.py runs the ablation arms (coarse only, + fine-grained, + adaptive, supervised)
from this config by switching the reward flags.
"""

from rltf_jax.run.config_files import sibling_config


def get_config():
    config = sibling_config(__file__, "default")
    config.total_steps = 1000            # the budget ends the run first
    config.max_train_minutes = 60.0
    config.ppo.lr = 1e-5                 # the default's; pinned so the experiment does not drift
    config.checkpoint.every = 10
    config.eval.every = 0
    return config
