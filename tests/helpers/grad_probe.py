"""The gradient a PPO update computes, and a bound on how far two float32 programs' gradients may differ
(docs/testing.md).

Comparing the weights after AdamW between two differently ordered float32 programs (length groups vs
one padded batch, grad_accum 4 vs 1, a mesh vs one device) is a coin toss on the weights whose gradient
is rounding noise: Adam's first step is lr g / (|g| + eps), a full +-lr move whatever |g| is. So the
tests compare what the programs actually compute differently, the gradient, and bound AdamW's step
separately (at most ~lr per weight per step, `adam_step_bound`).

* `record_gradients(state)`: an optimizer that leaves the weights where they are and keeps the sum of
  the gradients `_minibatch_step` hands it (before clipping). Swapped in for `ppo.make_optimizer`, the
  update's own jitted program (its length groups, microbatch scan, shardings) produces the gradient.
* `token_scale(...)`: the bound's scale. The loss is a sum over action tokens (and value positions) of
  per-token terms (loss_fn is linear in its masks for fixed denominators), so with g_t the gradient of
  token t's term alone, S = sum_t |g_t| elementwise is what the cancellation in the final sum hides,
  and the per-token metric sums likewise. Computed with `jax.grad(ppo_update_step.loss_fn)` on one-token masks.
* The bound (`assert_gradients_close`): per parameter leaf, norm-wise,
  ||g_A - g_B||_2 <= 2 gamma~_n(4) ||S||_2 with n = the forward's longest accumulation path
  (`decoder_path_terms`) twice (the backward mirrors it) plus the number of tokens summed. Like
  `logit_error_bound` it is a model of the error (each program's rounding errors reach the gradient in
  units of the per-token absolute gradients), not a proof; the measured ratio is in docs/testing.md. A
  real bug (a dropped row, a wrong group, a doubled gradient) moves a leaf by O(||S|| / rows): 650x to
  4000x the float32 bound measured (the tests assert > 100x). With several minibatches, each with its
  own denominator, the scale is multiplied by `minibatch_factor`; bfloat16 compute uses
  u = sqrt(u_f32 u_bf16) (test_ppo_sharded.py says why; a dropped row is only 2.5x that bound).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fp_bounds import U_F32, decoder_path_terms, probabilistic_gamma
from rltf_jax import ppo
from rltf_jax.ppo import update as ppo_update_step


def recorder() -> optax.GradientTransformation:
    def init(params):
        return {"grad_sum": jax.tree.map(jnp.zeros_like, params)}

    def update(grads, state, params=None):
        del params
        total = jax.tree.map(jnp.add, state["grad_sum"], grads)
        return jax.tree.map(jnp.zeros_like, grads), {"grad_sum": total}

    return optax.GradientTransformation(init, update)


def record_gradients(monkeypatch, defs, config, state, batch, mesh=None):
    """(sum of the gradients of every optimizer step, metrics) of `ppo.make_update` on `batch`, with an
    optimizer that does not move the weights (so every step's gradient is at the initial weights)."""
    rec = recorder()
    monkeypatch.setattr(ppo_update_step, "make_optimizer", lambda config: rec)
    state = state._replace(opt_state=rec.init({"policy": state.policy, "value": state.value}))
    kwargs = {} if mesh is None else {"mesh": mesh, "state": state}
    new_state, metrics = ppo.make_update(defs, config, **kwargs)(state, batch)
    return jax.tree.map(np.asarray, new_state.opt_state["grad_sum"]), {k: float(v) for k, v in metrics.items()}


def token_scale(defs, config, state, batch):
    """(S: per-parameter sum over tokens of |gradient of that token's loss term|, per-metric sums of
    |that token's metric term|, number of tokens, each row's gradient) for one optimizer step over
    the whole `batch` (one PPOBatch: the padded batch), at the state's weights."""
    batch = ppo.complete_batch(batch)
    stats = ppo.rollout_statistics(defs, config, state, batch)
    data = {k: stats[k] for k in ppo_update_step.PER_ACTION_STATS if k in stats}
    data.update(tokens=jnp.asarray(batch.tokens), attention_mask=jnp.asarray(batch.attention_mask))
    action = data["action_mask"]
    value = data.get("value_mask", action)
    denominator = jnp.maximum(action.sum(), 1).astype(jnp.float32)
    value_denominator = jnp.maximum(value.sum(), 1).astype(jnp.float32)
    params = {"policy": state.policy, "value": state.value}
    width = action.shape[1]

    @jax.jit
    def row_scale(row):
        def one_token(t):
            only = jnp.arange(width) == t
            mb = dict(row, action_mask=row["action_mask"] & only)
            if "value_mask" in row:
                mb["value_mask"] = row["value_mask"] & only
            grads, sums = jax.grad(ppo_update_step.loss_fn, has_aux=True)(params, defs, config, state.kl_coef, mb,
                                                              denominator, value_denominator)
            return grads, sums

        grads, sums = jax.vmap(one_token)(jnp.arange(width))
        return (jax.tree.map(lambda g: jnp.abs(g.astype(jnp.float32)).sum(0), grads),
                jax.tree.map(lambda s: jnp.abs(s).sum(0), sums), jax.tree.map(lambda g: g.sum(0), grads))

    total_g, total_m, rows = None, None, []
    for r in range(action.shape[0]):
        g, m, signed = row_scale(jax.tree.map(lambda x: x[r:r + 1], data))
        rows.append(jax.tree.map(np.asarray, signed))
        g = jax.tree.map(lambda x: np.asarray(x, np.float64), g)
        m = {k: float(v) for k, v in m.items()}
        total_g = g if total_g is None else jax.tree.map(np.add, total_g, g)
        total_m = m if total_m is None else {k: total_m[k] + m[k] for k in m}
    tokens = int(np.asarray(action).sum() + np.asarray(value).sum())
    return total_g, total_m, tokens, rows


def minibatch_factor(config, batch) -> float:
    """How many times `token_scale`'s S (one step, denominator = the whole batch's tokens) the sum of
    the update's recorded gradients can hold: epochs x (whole-batch tokens / the fewest tokens any
    minibatch of batch / num_minibatches rows can have). With advantage="turn" the value loss has its
    own denominator, not covered here (asserted)."""
    assert config.num_minibatches == 1 or config.advantage != "turn"
    batch = ppo.complete_batch(batch)
    rows = batch.tokens.shape[0] // config.num_minibatches
    factor = 1.0
    for mask in (np.asarray(batch.response_mask)[:, 1:],):
        counts = np.sort(mask.sum(1))
        factor = max(factor, counts.sum() / max(counts[:rows].sum(), 1) if config.num_minibatches > 1 else 1.0)
    return config.epochs * factor


def gradient_terms(model_config, seq: int, tokens: int) -> int:
    """n for probabilistic_gamma: the forward's longest path, twice (backward), plus the token sum."""
    forward = decoder_path_terms(layers=model_config.num_layers, hidden=model_config.hidden_size,
                                 heads=model_config.num_heads, head_dim=model_config.head_dim,
                                 kv_heads=model_config.num_kv_heads,
                                 intermediate=model_config.intermediate_size, seq=seq)
    return 2 * forward + tokens


def leaf_ratios(g_a, g_b, scale, n_terms: int, steps: int = 1, u: float = U_F32) -> dict:
    """Per leaf ||g_a - g_b|| / (2 gamma~_n(4) steps ||S||) (a ratio <= 1 passes)."""
    bound = 2 * probabilistic_gamma(n_terms, 4.0, u) * steps
    flat_a = jax.tree_util.tree_flatten_with_path(g_a)[0]
    flat_b = jax.tree.leaves(g_b)
    flat_s = jax.tree.leaves(scale)
    out = {}
    for (path, a), b, s in zip(flat_a, flat_b, flat_s):
        diff = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        norm = np.linalg.norm(s)
        out[jax.tree_util.keystr(path)] = diff / (bound * norm) if norm > 0 else (0.0 if diff == 0 else math.inf)
    return out


def assert_gradients_close(g_a, g_b, scale, n_terms: int, steps: int = 1, u: float = U_F32) -> float:
    ratios = leaf_ratios(g_a, g_b, scale, n_terms, steps, u)
    worst = max(ratios.values())
    assert worst <= 1, sorted(ratios.items(), key=lambda kv: -kv[1])[:5]
    return worst


def rollout_metric_scales(defs, config, state, batch) -> dict:
    """For each of `ppo_update_step._rollout_metrics`' metrics, the same mean (or per-sequence sum) of the absolute
    values of the per-token terms (on the padded batch): its float32 rounding, and a forward's
    log-prob / value rounding, is in units of this. A log p's error is in units of the logits' scale,
    which on the tiny models is O(|log p|) (vocab 16: |log p| ~ 2.8). kl/coef and response/length are
    copies and counts: exact (scale 0)."""
    batch = ppo.complete_batch(batch)
    stats = {k: np.abs(np.asarray(v, np.float64)) for k, v in
             ppo.rollout_statistics(defs, config, state, batch).items()}
    mask = np.asarray(stats["action_mask"], bool)
    mean = lambda x, m=mask: float((x * m).sum() / max(m.sum(), 1))  # noqa: E731
    per_seq = lambda x: float((x * mask).sum(1).mean())  # noqa: E731
    logps = stats["old_logp"] + stats["ref_logp"]
    coef = abs(float(state.kl_coef))
    rewards = np.abs(np.asarray(batch.token_rewards, np.float64))[:, 1:]
    out = {"kl/k1": mean(logps), "kl/k3": mean(logps), "kl/seq_k1": per_seq(logps), "kl/coef": 0.0,
           "policy/logprob": mean(stats["old_logp"]), "reward/env_per_seq": per_seq(rewards),
           "reward/total_per_seq": per_seq(stats["rewards"] + coef * logps),
           "advantage/mean": mean(stats["advantages"]), "response/length": 0.0}
    if "returns" in stats:
        value_mask = np.asarray(stats["value_mask"], bool)
        out["value/mean"] = mean(stats["old_values"], value_mask)
        out["value/return_mean"] = mean(stats["returns"], value_mask)
        out["value/explained_variance"] = 2.0  # 1 - var(R - V) / var(R): relative errors of two sums
    return out


def assert_metrics_close(m1: dict, m2: dict, metric_scale: dict, rollout_scale: dict, leaf_bounds: dict,
                         n_terms: int, u: float = U_F32) -> dict:
    """Every metric of two programs' updates within 2 gamma~_n(4) times its scale: the loss_fn sums'
    per-token absolute sums, the rollout metrics' absolute means; optim/grad_norm within the norm of
    the per-leaf gradient bounds (| ||a|| - ||b|| | <= ||a - b||). Returns each metric's ratio."""
    gam = 2 * probabilistic_gamma(n_terms, 4.0, u)
    assert m1.keys() == m2.keys()
    ratios = {}
    for key in m1:
        if key in metric_scale:
            bound = gam * metric_scale[key]
        elif key == "optim/grad_norm":
            bound = math.sqrt(sum(b * b for b in leaf_bounds.values()))
        else:
            bound = gam * rollout_scale[key]
        diff = abs(m1[key] - m2[key])
        assert diff <= bound, (key, m1[key], m2[key], bound)
        ratios[key] = diff / bound if bound else 0.0
    return ratios


def leaf_bounds(scale, n_terms: int, steps: int = 1, u: float = U_F32) -> dict:
    bound = 2 * probabilistic_gamma(n_terms, 4.0, u) * steps
    return {jax.tree_util.keystr(path): bound * float(np.linalg.norm(s))
            for path, s in jax.tree_util.tree_flatten_with_path(scale)[0]}


def adam_step_bound(lr: float, steps: int) -> float:
    """Two programs' weights after `steps` AdamW steps differ by at most this, per weight: each step
    moves a weight by lr |m_hat| / (sqrt(v_hat) + eps) <= lr (1 + 2e-3) for the first two steps at
    b1 = 0.9, b2 = 0.999 (Cauchy-Schwarz on the bias-corrected averages), in either direction."""
    return 2 * steps * lr * 1.002
