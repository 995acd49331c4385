"""PPO's per-token quantities and losses, as small pure functions (Schulman et al. 2017).

Losses return the *sum* over masked tokens divided by `denominator` (the number of masked tokens
in the whole minibatch), so gradients accumulated over microbatches equal the minibatch gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

KL_ESTIMATORS = ("k1", "k2", "k3")


def token_logprobs_and_entropy(logits: jax.Array, targets: jax.Array, temperature: float = 1.0):
    """log π(target) and the entropy of π at each position.

    Args: logits [B, L, V] (any float dtype, computed in float32); targets [B, L] int32.
    Returns: (logprobs [B, L] float32, entropy [B, L] float32), π = softmax(logits / temperature).
    """
    logits = logits.astype(jnp.float32) / temperature
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    probs = jnp.exp(logits - lse[..., None])
    entropy = lse - jnp.sum(probs * logits, axis=-1)
    return target_logits - lse, entropy


def kl_estimate(logprobs: jax.Array, ref_logprobs: jax.Array, estimator: str) -> jax.Array:
    """Per-token estimate of KL(π || π_ref) from the sampled token (Schulman, "Approximating KL").

    With log r = log π_ref(x) - log π(x), x ~ π:
        k1 = -log r                 (unbiased, can be negative)
        k2 = (log r)² / 2           (biased, low variance)
        k3 = (r - 1) - log r        (unbiased, always ≥ 0)
    logprobs, ref_logprobs [B, L] -> [B, L].
    """
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio ** 2
    if estimator == "k3":
        return jnp.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")


def masked_sum(x: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(mask, x, 0.0))


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return masked_sum(x, mask) / jnp.maximum(jnp.sum(mask), 1)


def clipped_policy_loss(logprobs, old_logprobs, advantages, mask, clip_eps: float, denominator):
    """PPO-clip surrogate: L = Σ_t max(-A_t ρ_t, -A_t clip(ρ_t, 1-ε, 1+ε)) / denominator,
    ρ_t = exp(log π(a_t) - log π_old(a_t)).

    Args: logprobs, old_logprobs, advantages [B, L] float32; mask [B, L] bool; denominator scalar.
    Returns: (loss scalar, clipped-token count scalar: tokens where the clipped term is active).
    """
    ratio = jnp.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = masked_sum(jnp.maximum(unclipped, clipped), mask) / denominator
    clipped_count = masked_sum((clipped > unclipped).astype(jnp.float32), mask)
    return loss, clipped_count


def policy_gradient_loss(logprobs, advantages, mask, denominator):
    """Plain policy gradient (REINFORCE with a baseline folded into A; Williams 1992), the loss
    CodeRL and RLTF train with: L = -Σ_t A_t log π(a_t) / denominator, A held fixed.

    Its gradient -Σ_t A_t ∇log π(a_t) / denominator equals PPO-clip's at ρ = 1 (the first step on
    fresh samples); without a ratio it is only right on-policy, so it is taken once per batch.
    Args: logprobs, advantages [B, L] float32; mask [B, L] bool; denominator scalar.
    Returns a scalar.
    """
    return -masked_sum(jax.lax.stop_gradient(advantages) * logprobs, mask) / denominator


def clipped_value_loss(values, old_values, returns, mask, clip_eps: float, denominator):
    """Clipped value loss: ½ Σ_t max((V_t - R_t)², (V_old,t + clip(V_t - V_old,t, ±ε) - R_t)²) / denominator.

    values, old_values, returns [B, L] float32; mask [B, L] bool. Returns a scalar.
    """
    clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    loss = jnp.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_sum(loss, mask) / denominator


def explained_variance(predicted, target, mask) -> jax.Array:
    """1 - Var[target - predicted] / Var[target] over the masked tokens (1 = perfect, ≤ 0 = useless)."""
    mean_t = masked_mean(target, mask)
    var_t = masked_mean((target - mean_t) ** 2, mask)
    resid = target - predicted
    mean_r = masked_mean(resid, mask)
    var_r = masked_mean((resid - mean_r) ** 2, mask)
    return jnp.where(var_t > 0, 1.0 - var_r / jnp.maximum(var_t, 1e-12), 0.0)


def whiten(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """(x - mean) / std over the masked entries; 0 off the mask. x [B, L], mask [B, L] -> [B, L]."""
    mean = masked_mean(x, mask)
    std = jnp.sqrt(masked_mean((x - mean) ** 2, mask))
    return jnp.where(mask, (x - mean) / (std + eps), 0.0)
