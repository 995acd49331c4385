"""Rewards from unit-test feedback: coarse / adaptive outcome rewards, RLTF's fine-grained error
classes, and the per-token reward array the PPO step takes (see docs/rewards.md)."""

from rltf_jax.rewards.config import RewardConfig
from rltf_jax.rewards.error_class import ERROR_CLASSES, ErrorLocation, classify_error
from rltf_jax.rewards.outcome import adaptive_reward, coarse_reward, outcome_reward
from rltf_jax.rewards.token_offsets import span_token_mask, token_char_offsets
from rltf_jax.rewards.token_rewards import fine_grained_token_mask, reward_metrics, score_batch

__all__ = [
    "RewardConfig", "ERROR_CLASSES", "ErrorLocation", "classify_error", "adaptive_reward",
    "coarse_reward", "outcome_reward", "span_token_mask", "token_char_offsets",
    "fine_grained_token_mask", "reward_metrics", "score_batch",
]
