"""Supervised batches: reference solutions as teacher-forcing rows (the update is `rltf_jax.ppo.supervised_update`).

RLTF starts from a supervised model and, in its ablation, compares RL against supervised training
alone. Here a supervised step is teacher forcing on ``prompt ⧺ reply`` where the reply is a problem's
reference solution written the way the policy answers in chat (one ```python block), with the loss on
the reply tokens only. It shares the PPO TrainState and optimizer, so it can stand alone
(``config.method = "supervised"``: the baseline) or run after every N RL steps
(``config.supervised.every``), as RLTF interleaved it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rltf_jax.data.problem import Problem
from rltf_jax.env.prompts import build_prompt


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
