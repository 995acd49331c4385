"""Supervised fine-tuning on reference solutions: RLTF's supervised baseline, and its interleaved loss.

RLTF starts from a supervised model and, in its ablation, compares RL against supervised training
alone. Here a supervised step is teacher forcing on ``prompt ⧺ reply`` where the reply is a problem's
reference solution written the way the policy answers in chat (one ```python block), with the loss on
the reply tokens only. It shares the PPO TrainState and optimizer, so it can stand alone
(``config.method = "supervised"``: the baseline) or run after every N RL steps
(``config.supervised.every``), as RLTF interleaved it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from rltf_jax.data.problem import Problem
from rltf_jax.env.prompts import build_prompt
from rltf_jax.parallel.mesh import BATCH_AXES
from rltf_jax.ppo import ModelDefs, PPOConfig, TrainState, forward, make_optimizer, train_state_shardings
from rltf_jax.ppo import losses as L


def solution_reply(solution: str, style: str = "chat") -> str:
    """The reply the policy is taught: chat = the solution in one ```python block; plain = the code."""
    code = solution.strip("\n") + "\n"
    return f"```python\n{code}```" if style == "chat" else code


def supervised_batch(problems: Sequence[Problem], tokenizer, *, batch_size: int, pad_id: int,
                     style: str = "chat", length_multiple: int = 64) -> dict[str, np.ndarray]:
    """Right-padded ``prompt ⧺ solution reply`` rows for the problems that have a reference solution
    (the first solution of each, problems cycled to fill ``batch_size`` rows).

    Returns tokens [B, T] int32, attention_mask [B, T] bool, response_mask [B, T] bool (the reply's
    tokens, where the loss is taken). Raises ValueError when no problem has a solution.
    """
    usable = [p for p in problems if p.solutions]
    if not usable:
        raise ValueError("supervised training needs reference solutions; none of these "
                         f"{len(problems)} problems has one")
    rows = []
    for i in range(batch_size):
        problem = usable[i % len(usable)]
        prompt = build_prompt(problem, tokenizer, style=style)
        bos = tokenizer.bos_token
        prompt_ids = tokenizer(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))["input_ids"]
        reply_ids = tokenizer(solution_reply(problem.solutions[0], style), add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids, reply_ids))
    longest = max(len(p) + len(r) for p, r in rows)
    length = max(length_multiple, -(-longest // length_multiple) * length_multiple)
    tokens = np.full((batch_size, length), pad_id, np.int32)
    attention = np.zeros((batch_size, length), bool)
    response = np.zeros((batch_size, length), bool)
    for row, (prompt_ids, reply_ids) in enumerate(rows):
        p, n = len(prompt_ids), len(reply_ids)
        tokens[row, :p + n] = prompt_ids + reply_ids
        attention[row, :p + n] = True
        response[row, p:p + n] = True
    return {"tokens": tokens, "attention_mask": attention, "response_mask": response}


def supervised_update(defs: ModelDefs, config: PPOConfig, state: TrainState, tokens, attention_mask,
                      response_mask):
    """One optimizer step of mean token NLL on the reply tokens (logits at temperature 1).

    tokens / attention_mask / response_mask [B, T]. Returns (new TrainState, metrics
    {"supervised/nll": nats per reply token, "supervised/tokens", "supervised/grad_norm"}).
    """
    unit = dataclasses.replace(config, temperature=1.0)
    mask = jnp.asarray(response_mask)[:, 1:]
    count = jnp.maximum(mask.sum(), 1).astype(jnp.float32)

    def loss_fn(params):
        logp, _, _ = forward(defs._replace(value=None), unit, params["policy"], None, tokens, attention_mask)
        return -L.masked_sum(logp, mask) / count

    params = {"policy": state.policy, "value": state.value}
    nll, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {"supervised/nll": nll, "supervised/tokens": count, "supervised/grad_norm": optax.tree.norm(grads)}
    return state._replace(policy=params["policy"], value=params["value"], opt_state=opt_state), metrics


def make_supervised_update(defs: ModelDefs, config: PPOConfig, *, mesh=None, state: TrainState | None = None):
    """The jitted `(state, batch dict) -> (state, metrics)`; `state` is donated (shardings as PPO's)."""
    fn = lambda s, b: supervised_update(defs, config, s, b["tokens"], b["attention_mask"],  # noqa: E731
                                        b["response_mask"])
    if mesh is None:
        return jax.jit(fn, donate_argnums=(0,))
    if state is None:
        raise ValueError("make_supervised_update(mesh=...) needs an example `state` for its shardings")

    rows = NamedSharding(mesh, PartitionSpec(BATCH_AXES, None))
    batch_sh = {"tokens": rows, "attention_mask": rows, "response_mask": rows}
    state_sh = train_state_shardings(state, mesh)
    return jax.jit(fn, donate_argnums=(0,), in_shardings=(state_sh, batch_sh),
                   out_shardings=(state_sh, NamedSharding(mesh, PartitionSpec())))
