"""RLEF's turn-level value and advantage (Gehring et al. 2024, §3.2), as pure jnp functions.

RLEF predicts one value per turn, V(c_k), at the last prompt token before reply k, and gives every
token of reply k the same advantage (γ = 1)

    A_t = -V(c_k) + Σ_{i ≥ k} R_i        for every token t of reply k,

where R_i is the total reward of reply i (its environment rewards and, with kl_mode "reward", its
-β·KL terms). The value model is fit to the turn returns G_k = Σ_{i ≥ k} R_i at those positions.

All arrays are on the PPO step's action axis L = T - 1 (ppo.py): ``turn_ids = EpisodeBatch.
turn_ids[:, 1:]`` (the action predicting token t + 1 belongs to that token's reply) and
``value_positions = EpisodeBatch.value_positions`` unchanged (index p predicts the reply's first
token, and values[:, p] = V(hidden[p]) is the value of the context before it).
"""

from __future__ import annotations

import jax.numpy as jnp


def turn_one_hot(turn_ids: jnp.ndarray, num_turns: int) -> jnp.ndarray:
    """[B, L] int32 (-1 off replies) -> [B, L, K] float32 membership of each action in each reply."""
    return (turn_ids[..., None] == jnp.arange(num_turns)).astype(jnp.float32)


def turn_reward_sums(rewards: jnp.ndarray, turn_ids: jnp.ndarray, num_turns: int) -> jnp.ndarray:
    """R_k: the total reward of each reply, [B, L] x [B, L] -> [B, K] float32."""
    return jnp.einsum("bl,blk->bk", rewards.astype(jnp.float32), turn_one_hot(turn_ids, num_turns))


def turn_returns(rewards: jnp.ndarray, turn_ids: jnp.ndarray, num_turns: int,
                 gamma: float = 1.0) -> jnp.ndarray:
    """G_k = Σ_{i ≥ k} γ^{i-k} R_i over replies: [B, K] float32 (0 for absent replies' own R)."""
    sums = turn_reward_sums(rewards, turn_ids, num_turns)
    weights = jnp.triu(gamma ** (jnp.arange(num_turns)[None, :] - jnp.arange(num_turns)[:, None]))
    return sums @ weights.T


def turn_values(values: jnp.ndarray, value_positions: jnp.ndarray) -> jnp.ndarray:
    """V(c_k): values [B, L] read at value_positions [B, K] (-1 = absent reply -> 0): [B, K]."""
    picked = jnp.take_along_axis(values, jnp.maximum(value_positions, 0), axis=1)
    return jnp.where(value_positions >= 0, picked, 0.0)


def turn_level_advantages(rewards: jnp.ndarray, values: jnp.ndarray, turn_ids: jnp.ndarray,
                          value_positions: jnp.ndarray, gamma: float = 1.0):
    """RLEF's advantage: every action of reply k gets G_k - V(c_k).

    Args:
      rewards [B, L] float32 (per-action rewards incl. KL terms); values [B, L] float32;
      turn_ids [B, L] int32 (-1 off replies); value_positions [B, K] int32 (-1 absent).
    Returns:
      advantages [B, L] (0 off replies), returns G [B, K], turn values V(c) [B, K].
    """
    num_turns = value_positions.shape[1]
    returns = turn_returns(rewards, turn_ids, num_turns, gamma)
    v = turn_values(values, value_positions)
    per_turn = jnp.where(value_positions >= 0, returns - v, 0.0)
    advantages = jnp.einsum("bk,blk->bl", per_turn, turn_one_hot(turn_ids, num_turns))
    return advantages, returns, v


def turn_value_targets(returns: jnp.ndarray, value_positions: jnp.ndarray, length: int):
    """Scatter G_k to the value positions: (targets [B, L] float32, mask [B, L] bool), for the
    value loss (the critic is trained only where a turn's value is read)."""
    rows = jnp.arange(returns.shape[0])[:, None]
    valid = value_positions >= 0
    index = jnp.where(valid, value_positions, length)  # out of range -> dropped
    targets = jnp.zeros((returns.shape[0], length), jnp.float32).at[rows, index].set(returns, mode="drop")
    mask = jnp.zeros((returns.shape[0], length), bool).at[rows, index].set(valid, mode="drop")
    return targets, mask


def geometric_mean_turn_kl(logp: jnp.ndarray, ref_logp: jnp.ndarray, turn_ids: jnp.ndarray,
                           num_turns: int) -> jnp.ndarray:
    """RLEF's KL form: log of the geometric-mean probability ratio of each reply,
    (1/n_k) Σ_{t ∈ k} (log π - log ρ), placed on the reply's last action: [B, L] float32.

    Multiply by β and subtract from the rewards in place of the per-token k1 term; it does not
    favour short replies the way a summed log-ratio does.
    """
    one_hot = turn_one_hot(turn_ids, num_turns)
    counts = one_hot.sum(axis=1)                                    # [B, K]
    means = jnp.einsum("bl,blk->bk", (logp - ref_logp).astype(jnp.float32), one_hot) / jnp.maximum(counts, 1)
    length = turn_ids.shape[1]
    last = jnp.max(jnp.where(one_hot > 0, jnp.arange(length)[None, :, None], -1), axis=1)  # [B, K]
    is_last = (jnp.arange(length)[None, :, None] == last[:, None, :]) & (counts[:, None, :] > 0)
    return jnp.einsum("bk,blk->bl", means, is_last.astype(jnp.float32))


def turn_estimates(rewards: jnp.ndarray, values: jnp.ndarray, turn_ids: jnp.ndarray,
                   value_positions: jnp.ndarray, gamma: float = 1.0):
    """What the PPO step needs for RLEF's turn-level value, on the action axis L.

    Args: rewards, values [B, L] float32; turn_ids [B, L] int32 (already shifted to actions);
      value_positions [B, K] int32.
    Returns: advantages [B, L] (G_k - V(c_k) on reply k's actions), value targets [B, L] (G_k at
      each turn's value position, 0 elsewhere) and value_mask [B, L] bool (those positions).
    """
    advantages, returns, _ = turn_level_advantages(rewards, values, turn_ids, value_positions, gamma)
    targets, value_mask = turn_value_targets(returns, value_positions, rewards.shape[1])
    return advantages, targets, value_mask
