"""PPO for code LLMs: config, batch, train state, losses, advantage estimators, the jitted update.

The trainer and the rollouts use these names; the pieces live in `types` (PPOConfig, PPOBatch),
`state` (TrainState, optimizer, shardings, adaptive KL), `losses`, `advantages`,
`turn_advantages`, `length_groups` and `update` (the jitted step), plus `supervised_update`.
"""

from rltf_jax.ppo.state import (
                                ModelDefs,
                                TrainState,
                                init_train_state,
                                make_optimizer,
                                train_state_shardings,
                                update_kl_coef,
)
from rltf_jax.ppo.types import KL_FORMS, KL_MODES, PPOBatch, PPOConfig, batch_from_rollout, complete_batch
from rltf_jax.ppo.update import forward, make_update, positions_from_mask, ppo_update, rollout_statistics

__all__ = ["KL_FORMS", "KL_MODES", "ModelDefs", "PPOBatch", "PPOConfig", "TrainState", "batch_from_rollout",
           "complete_batch", "forward", "init_train_state", "make_optimizer", "make_update", "positions_from_mask",
           "ppo_update", "rollout_statistics", "train_state_shardings", "update_kl_coef"]
