"""Advantage estimators, registered by name: "gae" (value head), "grpo", "rloo", "greedy"
(critic-free).

All take token-level arrays over the action axis L (one entry per predicted token) and a mask that
is True on the tokens the policy wrote (possibly several spans, e.g. RLEF turns). Positions off the
mask are skipped: GAE treats the masked tokens as one contiguous trajectory, so the feedback a
multi-turn episode inserts between replies does not break the recursion.

Every estimator has the signature
    estimator(rewards [B, L] f32, values [B, L] f32 | None, mask [B, L] bool, group_ids [B] int32,
              *, gamma, lam, eps, baselines [B] f32 | None = None)
        -> (advantages [B, L] f32, returns [B, L] f32 | None)
and is zero off the mask. `baselines` (PPOBatch.baselines) is read by "greedy" only.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

ADVANTAGE_ESTIMATORS: dict[str, Callable] = {}
NEEDS_VALUES: dict[str, bool] = {}


def register_estimator(name: str, needs_values: bool):
    """Decorator: make an estimator selectable by `name` in PPOConfig.advantage."""
    def register(fn):
        ADVANTAGE_ESTIMATORS[name] = fn
        NEEDS_VALUES[name] = needs_values
        return fn
    return register


def get_estimator(name: str) -> Callable:
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; registered: {sorted(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name]


def gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float, lam: float):
    """Generalised advantage estimation (Schulman et al. 2016) with a reversed `lax.scan`.

    Over the masked tokens t_1 < ... < t_n of a row (V(t_{n+1}) = 0, the episode ends):
        δ_k = r_k + γ V_{k+1} - V_k,    A_k = δ_k + γ λ A_{k+1},    R_k = A_k + V_k.
    Args: rewards, values [B, L] float32; mask [B, L] bool. Returns (advantages, returns) [B, L].
    """
    mask = mask.astype(bool)

    def step(carry, xs):
        next_value, next_adv = carry
        reward, value, on = xs
        delta = reward + gamma * next_value - value
        adv = delta + gamma * lam * next_adv
        carry = (jnp.where(on, value, next_value), jnp.where(on, adv, next_adv))
        return carry, jnp.where(on, adv, 0.0)

    batch = rewards.shape[0]
    init = (jnp.zeros(batch, jnp.float32), jnp.zeros(batch, jnp.float32))
    xs = (rewards.T.astype(jnp.float32), values.T.astype(jnp.float32), mask.T)
    _, advantages = jax.lax.scan(step, init, xs, reverse=True)
    advantages = advantages.T
    returns = jnp.where(mask, advantages + values, 0.0)
    return advantages, returns


def sequence_scores(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """[B] total reward of each sequence: Σ_t rewards[b, t] over the mask."""
    return jnp.sum(jnp.where(mask, rewards, 0.0), axis=1)


def _same_group(group_ids: jax.Array) -> jax.Array:
    return group_ids[:, None] == group_ids[None, :]  # [B, B]


def grpo_scores(scores: jax.Array, group_ids: jax.Array, eps: float = 1e-6) -> jax.Array:
    """GRPO group normalisation (Shao et al. 2024): A_i = (s_i - mean_g(s)) / (std_g(s) + eps),
    mean and (population) std over the samples sharing i's group. scores, group_ids [B] -> [B]."""
    same = _same_group(group_ids).astype(jnp.float32)
    count = same.sum(axis=1)
    mean = same @ scores / count
    var = same @ (scores ** 2) / count - mean ** 2
    return (scores - mean) / (jnp.sqrt(jnp.maximum(var, 0.0)) + eps)


def rloo_scores(scores: jax.Array, group_ids: jax.Array) -> jax.Array:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): A_i = s_i - mean_{j ≠ i, same group} s_j;
    0 for a sample alone in its group. scores, group_ids [B] -> [B]."""
    same = _same_group(group_ids).astype(jnp.float32)
    others = same.sum(axis=1) - 1.0
    others_sum = same @ scores - scores
    return jnp.where(others > 0, scores - others_sum / jnp.maximum(others, 1.0), 0.0)


@register_estimator("gae", needs_values=True)
def gae_estimator(rewards, values, mask, group_ids, *, gamma, lam, eps, baselines=None):
    del group_ids, eps, baselines
    if values is None:
        raise ValueError("the 'gae' advantage needs values (a value head)")
    return gae(rewards, values, mask, gamma, lam)


@register_estimator("grpo", needs_values=False)
def grpo_estimator(rewards, values, mask, group_ids, *, gamma, lam, eps, baselines=None):
    """Group-normalised sequence score, the same advantage on every token of the sequence."""
    del values, gamma, lam, baselines
    adv = grpo_scores(sequence_scores(rewards, mask), group_ids, eps)
    return jnp.where(mask, adv[:, None], 0.0), None


@register_estimator("rloo", needs_values=False)
def rloo_estimator(rewards, values, mask, group_ids, *, gamma, lam, eps, baselines=None):
    """Leave-one-out baselined sequence score on every token of the sequence."""
    del values, gamma, lam, eps, baselines
    adv = rloo_scores(sequence_scores(rewards, mask), group_ids)
    return jnp.where(mask, adv[:, None], 0.0), None


@register_estimator("greedy", needs_values=False)
def greedy_estimator(rewards, values, mask, group_ids, *, gamma, lam, eps, baselines=None):
    """Self-critical baseline (Rennie et al. 2017), as CodeRL (Le et al. 2022) and RLTF train:
    the baseline of a sample is the reward of the greedy decode of the same problem, judged in the
    same step (loop.sample_programs(greedy_baseline=True)):

        A_{i,t} = s_i - b_i   on every token t of sequence i,   s_i = Σ_t rewards[i, t] over the mask,
        b_i = outcome reward of the greedy (temperature 0) decode of sequence i's problem.

    baselines [B] f32 (b_i; one value per group, repeated on its rows) -> advantages [B, L].
    """
    del values, gamma, lam, eps, group_ids
    if baselines is None:
        raise ValueError("the 'greedy' advantage needs the batch's baselines (the greedy decode's "
                         "reward of each row's problem: loop.sample_programs(greedy_baseline=True))")
    adv = sequence_scores(rewards, mask) - baselines.astype(jnp.float32)
    return jnp.where(mask, adv[:, None], 0.0), None


@register_estimator("turn", needs_values=True)
def turn_estimator(rewards, values, mask, group_ids, *, gamma, lam, eps, baselines=None):
    """RLEF's turn-level value: computed by ppo.rollout_statistics from the batch's turn structure
    (turn_advantages.turn_estimates), since it needs `turn_ids` and `value_positions`."""
    raise ValueError("the 'turn' advantage needs the batch's turn_ids and value_positions "
                     "(multi-turn episodes); ppo.rollout_statistics computes it")
