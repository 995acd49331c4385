"""PPO for code LLMs: one jitted update step over a batch of sampled, scored sequences.

The inputs (PPOConfig, PPOBatch) live in `types`, the state (TrainState, init, shardings, the
adaptive KL controller) in `state`.

The update, as pseudocode (each line is a function below or in ppo_losses.py / advantages.py):

    logπ_old, V_old  = forward(policy, value)(batch)          # recomputed, no gradient
    logπ_ref         = forward(reference)(batch)
    kl_t             = k1|k3(logπ_old, logπ_ref)
    r_t              = token_rewards_t - β kl_t                # when PPOConfig.kl_mode == "reward"
    A_t, R_t         = GAE(γ, λ)(r, V_old) | GRPO(r) | RLOO(r) | r - r_greedy  # PPOConfig.advantage
    repeat epochs:                                             # lax.scan
        for each minibatch of a fresh permutation:             # lax.scan
            g = Σ over microbatches ∇ [ clip-policy-loss (or -A log π) + c_v clip-value-loss
                                        - c_e entropy (+ β k3 in the loss) ]  # lax.scan, accumulation
            params = AdamW(clip_by_global_norm(g), warmup schedule)

Sequences are `prompt ⧺ response` `[B, T]` (docs/interfaces.md); a `PackedBatch`
(shared_prompts.py) holds the same rows with each prompt computed once, its per-action arrays on a
compact [B, R] window. The "action" axis L = T - 1: the token at position t+1 is predicted from
position t, so per-token arrays inside the update are `[B, T-1]` and
`action_mask = response_mask[:, 1:]`. V at position t (read from hidden[t]) is the value of the
state before action t+1; for RLEF's turn-level value it is the value at the last prompt
token before a reply, i.e. the entry aligned with the reply's first action (a per-turn
`value_positions` input can select those later without changing the shapes here).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from rltf_jax.models.head_logprobs import token_logprobs_and_entropy_from_hidden
from rltf_jax.parallel.mesh import BATCH_AXES
from rltf_jax.ppo import losses as L
from rltf_jax.ppo.advantages import get_estimator
from rltf_jax.ppo.length_groups import join_rows, split_rows
from rltf_jax.ppo.packed_forward import PACKED_INPUTS, cast_floats, packed_forward, policy_model
from rltf_jax.ppo.shared_prompts import PackedBatch
from rltf_jax.ppo.state import ModelDefs, TrainState, make_optimizer, train_state_shardings
from rltf_jax.ppo.turn_advantages import geometric_mean_turn_kl, turn_estimates
from rltf_jax.ppo.types import PPOBatch, PPOConfig, complete_batch


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """[B, T] bool -> [B, T] int32 positions counting real tokens from 0 (left padding gets 0)."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=1) - 1, 0)


def forward(defs: ModelDefs, config: PPOConfig, policy, value, tokens, attention_mask):
    """Per-action log π, entropy and values of a [b, T] batch.

    Returns (logprobs [b, T-1], entropy [b, T-1], values [b, T-1] or None), all float32.
    """
    dtype = jnp.dtype(config.compute_dtype)
    positions = positions_from_mask(attention_mask)
    model = policy_model(defs, policy, dtype)
    hidden, _ = model.hidden_states(tokens, positions, attention_mask, layer_dtype=dtype)
    weight, tied = model.head_weight()
    logprobs, entropy = token_logprobs_and_entropy_from_hidden(hidden[:, :-1], weight, tokens[:, 1:], tied=tied,
                                                               temperature=config.temperature)
    values = None
    if defs.value is not None:
        value_model = nnx.merge(defs.value, cast_floats(value, dtype))
        if config.value_mode == "shared":
            values = value_model(hidden[:, :-1])
        else:
            values = value_model(tokens, positions, attention_mask)[:, :-1]
    return logprobs, entropy, values


def forward_microbatch(defs: ModelDefs, config: PPOConfig, policy, value, mb: dict):
    """`forward` on a microbatch dict: packed rows when it holds PACKED_INPUTS (no values then),
    else its tokens and attention_mask. Returns (logprobs, entropy, values or None) [b, L]."""
    if "packed_tokens" in mb:
        return (*packed_forward(defs, config, policy, mb), None)
    return forward(defs, config, policy, value, mb["tokens"], mb["attention_mask"])


def _chunked(fn, data: dict, chunks: int):
    """Apply fn to `data` ([B, ...] arrays) in `chunks` sequential pieces (lax.map), rejoined."""
    split = jax.tree.map(lambda x: x.reshape(chunks, x.shape[0] // chunks, *x.shape[1:]), data)
    out = jax.lax.map(fn, split)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)


def batch_parts(batch) -> tuple:
    """A PPOBatch or PackedBatch, or a tuple of PPOBatches (length groups, length_groups.py), as a tuple."""
    return (batch,) if isinstance(batch, (PPOBatch, PackedBatch)) else tuple(batch)


def rows_of(part) -> PPOBatch:
    """The PPOBatch a part's statistics are computed on (a PackedBatch's compact rows)."""
    return part.rows if isinstance(part, PackedBatch) else part


def model_inputs(part) -> dict:
    """The [rows, ...] arrays a part's forward reads (forward_microbatch), to be cut into microbatches."""
    rows = rows_of(part)
    inputs = {"tokens": rows.tokens, "attention_mask": rows.attention_mask}
    if isinstance(part, PackedBatch):
        packing = part.packing
        inputs.update(zip(PACKED_INPUTS, (packing.tokens, packing.segment_ids, packing.positions, packing.source)))
    return inputs


def join_parts(parts: tuple[PPOBatch, ...]) -> PPOBatch:
    """Length groups [b_g, T_g] -> one PPOBatch [Σ b_g, max T_g], each right-padded (mask False,
    turn_ids -1); the identity on a single part."""
    if len(parts) == 1:
        return parts[0]
    length = max(p.tokens.shape[1] for p in parts)
    fills = {"turn_ids": -1}
    joined = {}
    for name in PPOBatch._fields:
        values = [getattr(p, name) for p in parts]
        if name in ("group_ids", "value_positions", "baselines"):
            joined[name] = jnp.concatenate(values, axis=0)
        else:
            joined[name] = join_rows(values, length, fills.get(name, 0))
    return PPOBatch(**joined)


def rollout_statistics(defs, config, state: TrainState, batch) -> dict:
    """Old log π, old values, reference log π, KL, advantages and returns (no gradient), [B, T-1].

    `batch` is a PPOBatch, a PackedBatch (statistics on its compact rows) or a tuple of length
    groups; with groups, the forwards run per group and the statistics are over all rows joined
    (`join_parts` order, T = the longest group's)."""
    return _rollout_statistics(defs, config, state, batch_parts(batch))[0]


def _rollout_statistics(defs, config, state: TrainState, parts: tuple):
    """(statistics over the joined rows, the joined PPOBatch)."""
    chunks = config.num_minibatches * config.grad_accum
    if any(isinstance(p, PackedBatch) for p in parts) and (len(parts) > 1 or config.uses_values):
        raise ValueError(f"a PackedBatch is one part of a critic-free update (advantage={config.advantage!r}, "
                         f"{len(parts)} parts)")

    def stats(mb):
        logp, _, values = forward_microbatch(defs, config, state.policy, state.value, mb)
        ref_logp, _, _ = forward_microbatch(defs._replace(value=None), config, state.reference, None, mb)
        out = {"old_logp": logp, "ref_logp": ref_logp}
        if values is not None:
            out["old_values"] = values
        return out

    pieces = [jax.lax.stop_gradient(_chunked(stats, model_inputs(p), chunks)) for p in parts]
    batch = join_parts(tuple(rows_of(p) for p in parts))
    stats = {k: join_rows([p[k] for p in pieces], batch.tokens.shape[1] - 1) if len(parts) > 1 else pieces[0][k]
             for k in pieces[0]}
    mask = batch.response_mask[:, 1:]
    rewards = batch.token_rewards[:, 1:].astype(jnp.float32)
    kl = L.kl_estimate(stats["old_logp"], stats["ref_logp"], config.kl_estimator)
    needs_turns = config.advantage == "turn" or (config.kl_mode == "reward" and config.kl_form == "turn_mean")
    if needs_turns and (batch.turn_ids is None or batch.value_positions is None):
        raise ValueError(f"advantage={config.advantage!r} / kl_form={config.kl_form!r} need the batch's "
                         "turn_ids and value_positions (multi-turn episodes, episode_batch.py)")
    turn_ids = batch.turn_ids[:, 1:] if needs_turns else None  # action t predicts token t + 1
    if config.kl_mode == "reward" and config.kl_form == "turn_mean":
        rewards = rewards - state.kl_coef * geometric_mean_turn_kl(
            stats["old_logp"], stats["ref_logp"], turn_ids, batch.value_positions.shape[1])
    elif config.kl_mode == "reward":
        rewards = rewards - state.kl_coef * kl
    penalties = jnp.zeros_like(rewards) if batch.token_penalties is None else \
        batch.token_penalties[:, 1:].astype(jnp.float32)
    if config.uses_values:  # a critic assigns credit: penalties are rewards like any other
        rewards = rewards + penalties
    value_mask = mask
    if config.advantage == "turn":  # RLEF: one value per reply, read before it; A = G_k - V(c_k)
        advantages, returns, value_mask = turn_estimates(rewards, stats["old_values"], turn_ids,
                                                         batch.value_positions, config.gamma)
    else:
        advantages, returns = get_estimator(config.advantage)(
            rewards, stats.get("old_values"), mask, batch.group_ids,
            gamma=config.gamma, lam=config.lam, eps=config.advantage_eps, baselines=batch.baselines)
    if config.normalize_advantages:
        advantages = L.whiten(advantages, mask)
    if not config.uses_values:
        # Critic-free estimators give one advantage per sequence, which would smear a line's
        # penalty over the whole reply. RLTF's fine-grained loss is un-baselined and per token:
        # A_t += penalty_t, on exactly the blamed tokens.
        advantages = advantages + jnp.where(mask, penalties, 0.0)
    stats.update(action_mask=mask, advantages=advantages, rewards=rewards, kl=kl)
    if returns is not None:
        stats.update(returns=returns, value_mask=value_mask)
    return stats, batch


def loss_fn(params, defs, config, kl_coef, mb: dict, denominator, value_denominator=None):
    """The PPO loss of one microbatch and its metric sums: policy terms are sums over its action
    tokens / `denominator`, the value loss a sum over its value positions / `value_denominator`."""
    logp, entropy, values = forward_microbatch(defs, config, params["policy"], params["value"], mb)
    mask = mb["action_mask"]
    if config.policy_loss == "pg":
        policy_loss, clipped = L.policy_gradient_loss(logp, mb["advantages"], mask, denominator), 0.0
    else:
        policy_loss, clipped = L.clipped_policy_loss(logp, mb["old_logp"], mb["advantages"], mask,
                                                     config.clip_eps, denominator)
    if config.ent_coef == 0.0:  # a metric only: no backward pass through the [B, L, V] entropy
        entropy = jax.lax.stop_gradient(entropy)
    entropy_sum = L.masked_sum(entropy, mask)
    loss = policy_loss - config.ent_coef * entropy_sum / denominator
    kl_loss = jnp.zeros(())
    if config.kl_mode == "loss":
        kl_loss = L.masked_sum(L.kl_estimate(logp, mb["ref_logp"], config.kl_estimator), mask) / denominator
        loss = loss + kl_coef * kl_loss
    value_loss = jnp.zeros(())
    if values is not None:
        value_loss = L.clipped_value_loss(values, mb["old_values"], mb["returns"], mb["value_mask"],
                                          config.value_clip, value_denominator)
        loss = loss + config.vf_coef * value_loss
    log_ratio = logp - mb["old_logp"]
    sums = {"loss/total": loss, "loss/policy": policy_loss, "loss/value": value_loss, "loss/kl": kl_loss,
            "loss/entropy": -config.ent_coef * entropy_sum / denominator,
            "policy/entropy": entropy_sum / denominator,
            "ppo/clip_fraction": clipped / denominator,
            "ppo/approx_kl": L.masked_sum(jnp.expm1(-log_ratio) + log_ratio, mask) / denominator}
    return loss, sums


def _minibatch_step(defs, config, optimizer, kl_coef, carry, minibatch: tuple):
    """One optimizer step on a minibatch: a tuple with one dict of [accum, micro_g, ...] arrays per
    length group; gradients summed over every microbatch of every group."""
    params, opt_state = carry
    denominator = jnp.maximum(sum(jnp.sum(mb["action_mask"]) for mb in minibatch), 1).astype(jnp.float32)
    value_denominator = jnp.maximum(sum(jnp.sum(mb.get("value_mask", mb["action_mask"])) for mb in minibatch),
                                    1).astype(jnp.float32)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def micro_step(acc, mb):
        (_, sums), grads = grad_fn(params, defs, config, kl_coef, mb, denominator, value_denominator)
        return jax.tree.map(jnp.add, acc, (grads, sums)), None

    zero = (jax.tree.map(jnp.zeros_like, params),
            jax.eval_shape(lambda: loss_fn(params, defs, config, kl_coef,
                                           jax.tree.map(lambda x: x[0], minibatch[0]), denominator,
                                           value_denominator)[1]))
    acc = (zero[0], jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zero[1]))
    for group in minibatch:  # one scan per length group (its own [micro_g, T_g] shapes)
        acc, _ = jax.lax.scan(micro_step, acc, group)
    grads, sums = acc
    sums["optim/grad_norm"] = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), sums


PER_ACTION_STATS = ("old_logp", "ref_logp", "advantages", "action_mask", "old_values", "returns", "value_mask")


def ppo_update(defs: ModelDefs, config: PPOConfig, state: TrainState, batch):
    """One PPO update (module docstring): returns (new TrainState, flat dict of float32 metrics).

    `batch`: a PPOBatch, or a tuple of PPOBatches of rows grouped by length (length_groups.py), each
    group's rows divisible by num_minibatches × grad_accum; every minibatch takes the same share of
    each group. Or a PackedBatch (shared_prompts.py): its microbatches are fixed by the packing, so
    rows are not shuffled between minibatches."""
    parts = tuple(jax.tree.map(jnp.asarray, p) for p in batch_parts(batch))
    packed = isinstance(parts[0], PackedBatch)
    per_step = config.num_minibatches * config.grad_accum
    sizes = [rows_of(p).tokens.shape[0] for p in parts]
    if any(size % per_step for size in sizes):
        raise ValueError(f"batch rows {sizes} are not divisible by num_minibatches × grad_accum = {per_step}")
    stats, joined = _rollout_statistics(defs, config, state, parts)
    widths = [rows_of(p).tokens.shape[1] - 1 for p in parts]
    split = {k: split_rows(stats[k], widths, sizes) for k in PER_ACTION_STATS if k in stats}
    data = tuple(dict({k: v[g] for k, v in split.items()}, **model_inputs(p)) for g, p in enumerate(parts))
    optimizer = make_optimizer(config)
    rng, epoch_rng = jax.random.split(jax.random.wrap_key_data(state.rng))

    def shaped(part: dict, size: int, key):
        order = None if packed else jax.random.permutation(key, size)
        return jax.tree.map(lambda x: (x if order is None else x[order]).reshape(
            config.num_minibatches, config.grad_accum, x.shape[0] // per_step, *x.shape[1:]), part)

    def epoch(carry, key):
        keys = [key] if len(parts) == 1 else list(jax.random.split(key, len(parts)))
        minibatches = tuple(shaped(part, size, k) for part, size, k in zip(data, sizes, keys))
        return jax.lax.scan(lambda c, mb: _minibatch_step(defs, config, optimizer, state.kl_coef, c, mb),
                            carry, minibatches)

    params = {"policy": state.policy, "value": state.value}
    (params, opt_state), sums = jax.lax.scan(epoch, (params, state.opt_state),
                                             jax.random.split(epoch_rng, config.epochs))
    metrics = jax.tree.map(jnp.mean, sums)
    metrics.update(_rollout_metrics(stats, joined, stats["action_mask"], state.kl_coef))
    new_state = state._replace(policy=params["policy"], value=params["value"], opt_state=opt_state,
                               step=state.step + 1, rng=jax.random.key_data(rng))
    return new_state, metrics


def _rollout_metrics(stats: dict, batch: PPOBatch, mask, kl_coef) -> dict:
    k3 = L.kl_estimate(stats["old_logp"], stats["ref_logp"], "k3")
    k1 = L.kl_estimate(stats["old_logp"], stats["ref_logp"], "k1")
    tokens_per_seq = jnp.maximum(mask.sum(axis=1), 1)
    metrics = {
        "kl/k1": L.masked_mean(k1, mask), "kl/k3": L.masked_mean(k3, mask),
        "kl/seq_k1": jnp.mean(jnp.sum(jnp.where(mask, k1, 0.0), axis=1)),
        "kl/coef": kl_coef,
        "policy/logprob": L.masked_mean(stats["old_logp"], mask),
        "reward/env_per_seq": jnp.mean(jnp.sum(jnp.where(mask, batch.token_rewards[:, 1:], 0.0), axis=1)),
        "reward/total_per_seq": jnp.mean(jnp.sum(jnp.where(mask, stats["rewards"], 0.0), axis=1)),
        "advantage/mean": L.masked_mean(stats["advantages"], mask),
        "response/length": jnp.mean(tokens_per_seq.astype(jnp.float32)),
    }
    if "returns" in stats:
        value_mask = stats["value_mask"]
        metrics["value/explained_variance"] = L.explained_variance(stats["old_values"], stats["returns"],
                                                                   value_mask)
        metrics["value/mean"] = L.masked_mean(stats["old_values"], value_mask)
        metrics["value/return_mean"] = L.masked_mean(stats["returns"], value_mask)
    return {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


def make_update(defs: ModelDefs, config: PPOConfig, *, mesh=None, state: TrainState | None = None):
    """The jitted update `(state, batch) -> (state, metrics)`; `state` is donated.

    With a mesh (and an example `state` for its tree), in/out shardings are explicit: TrainState per
    `train_state_shardings`, batch arrays split over ("data", "fsdp") on the batch axis, metrics
    replicated. Without a mesh, jit places everything on the default device.
    """
    fn = lambda s, b: ppo_update(defs, config, s, b)  # noqa: E731
    if mesh is None:
        return _with_penalties(jax.jit(fn, donate_argnums=(0,)))
    if state is None:
        raise ValueError("make_update(mesh=...) needs an example `state` to derive its shardings")

    state_sh = train_state_shardings(state, mesh)
    rows = NamedSharding(mesh, PartitionSpec(BATCH_AXES))  # a prefix: every batch array, any rank or group
    replicated = NamedSharding(mesh, PartitionSpec())
    return _with_penalties(jax.jit(fn, donate_argnums=(0,), in_shardings=(state_sh, rows),
                                   out_shardings=(state_sh, replicated)))


def _with_penalties(update):
    """The update on `complete_batch` of the batch (or of each length group, or of packed rows)."""

    def complete(part):
        return part._replace(rows=complete_batch(part.rows)) if isinstance(part, PackedBatch) else complete_batch(part)

    def call(state: TrainState, batch):
        parts = tuple(complete(p) for p in batch_parts(batch))
        return update(state, parts[0] if isinstance(batch, (PPOBatch, PackedBatch)) else parts)

    return call
