"""PPO's inputs: the hyperparameters (PPOConfig) and one update's data (PPOBatch), with the helpers
that build a PPOBatch from a rollout and fill its optional fields."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import numpy as np

from rltf_jax.models.value_head import VALUE_MODES
from rltf_jax.ppo import losses as L
from rltf_jax.ppo.advantages import NEEDS_VALUES, get_estimator

KL_MODES = ("reward", "loss")
KL_FORMS = ("token", "turn_mean")
POLICY_LOSSES = ("clip", "pg")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (a run config's `ppo` block maps onto this).

    advantage: "gae" (needs a value model) | "grpo" | "rloo" | "greedy" (critic-free; no value model is
      built; "greedy" subtracts the reward of each problem's greedy decode, PPOBatch.baselines).
    policy_loss: "clip" (PPO's clipped surrogate) | "pg" (plain policy gradient -A log π, CodeRL /
      RLTF; on-policy, so it needs epochs = num_minibatches = 1).
    gamma, lam: GAE discount and λ. clip_eps: policy ratio clip ε. value_clip: value clip (absolute).
    vf_coef, ent_coef: weights of the value loss and the entropy bonus.
    kl_coef: β, initial KL coefficient. kl_estimator: "k1" | "k2" | "k3".
    kl_mode: "reward" (β·kl subtracted from per-token rewards, PPO-RLHF) | "loss" (β·kl added to the loss).
    kl_form: "token" (β·kl_t on every action) | "turn_mean" (RLEF: β × the mean log-ratio of each reply,
      on its last action; needs the batch's turn_ids; with kl_mode "reward").
    adaptive_kl, kl_target, kl_horizon: Ziegler et al.'s controller (host-side, see update_kl_coef);
      kl_target is the per-sequence KL (nats) aimed for.
    epochs: passes over the batch. num_minibatches: optimizer steps per epoch.
    grad_accum: microbatches per minibatch (gradients summed, then one optimizer step).
    lr, warmup_steps (linear from 0, counted in optimizer steps), weight_decay, b1, b2, max_grad_norm.
    value_lr: the value head's / critic's learning rate (None: `lr`). A zero-initialised head trained at
      a policy's lr stays near 0 for hundreds of updates; critics usually learn an order of magnitude
      faster than the policy (OpenRLHF's defaults). With value_mode "shared" the value loss's
      gradient on the shared backbone still moves it at `lr`.
    compute_dtype: "float32" | "bfloat16": params stay float32, the forward runs on params cast to this
      dtype (matmuls accumulate in float32; logits and losses are float32).
    temperature: π = softmax(logits / temperature), the sampler's temperature.
    value_mode: "shared" (ValueHead on the policy's hidden states) | "separate" (a critic backbone).
    normalize_advantages: whiten advantages over the batch's response tokens.
    length_groups: rows sorted by length into this many groups, each padded to its own length
      (length_groups.py; the trainer splits the batch, the update takes the tuple). 1 = one padded batch.
    share_prompts: the replies to one prompt packed behind one copy of it (shared_prompts.py: the
      trainer packs, the update takes a PackedBatch). Single-turn, critic-free estimators only;
      instead of length groups.
    """

    advantage: str = "gae"
    policy_loss: str = "clip"
    gamma: float = 1.0
    lam: float = 0.95
    clip_eps: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    kl_mode: str = "reward"
    kl_form: str = "token"
    adaptive_kl: bool = False
    kl_target: float = 6.0
    kl_horizon: int = 10_000
    epochs: int = 1
    num_minibatches: int = 1
    grad_accum: int = 1
    lr: float = 1e-6
    value_lr: float | None = None
    warmup_steps: int = 0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.95
    max_grad_norm: float = 1.0
    compute_dtype: str = "float32"
    temperature: float = 1.0
    value_mode: str = "shared"
    normalize_advantages: bool = True
    advantage_eps: float = 1e-6
    length_groups: int = 1
    share_prompts: bool = False

    def __post_init__(self):
        get_estimator(self.advantage)
        checks = [(self.kl_mode in KL_MODES, f"kl_mode={self.kl_mode!r} not in {KL_MODES}"),
                  (self.kl_form in KL_FORMS, f"kl_form={self.kl_form!r} not in {KL_FORMS}"),
                  (self.kl_form == "token" or self.kl_mode == "reward",
                   "kl_form='turn_mean' is a reward term: it needs kl_mode='reward'"),
                  (self.kl_estimator in L.KL_ESTIMATORS,
                   f"kl_estimator={self.kl_estimator!r} not in {L.KL_ESTIMATORS}"),
                  (self.value_mode in VALUE_MODES, f"value_mode={self.value_mode!r} not in {VALUE_MODES}"),
                  (self.compute_dtype in ("float32", "bfloat16"),
                   f"compute_dtype={self.compute_dtype!r} not float32 | bfloat16"),
                  (self.value_lr is None or (self.value_lr >= 0 and self.lr > 0),
                   f"value_lr={self.value_lr!r} needs lr > 0 and value_lr >= 0"),
                  (not self.share_prompts or not NEEDS_VALUES[self.advantage],
                   f"share_prompts packs rows for critic-free estimators; advantage={self.advantage!r} "
                   "needs a value per row (set share_prompts=False)"),
                  (not self.share_prompts or (self.length_groups == 1 and self.kl_form == "token"),
                   "share_prompts replaces length groups and works on single-turn rows: it needs "
                   "length_groups=1 and kl_form='token'"),
                  (min(self.epochs, self.num_minibatches, self.grad_accum, self.length_groups) >= 1,
                   "epochs, num_minibatches, grad_accum and length_groups must be ≥ 1")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"PPOConfig: {message}")

    @property
    def uses_values(self) -> bool:
        return NEEDS_VALUES[self.advantage]


class PPOBatch(NamedTuple):
    """One update's data over `prompt ⧺ response` (docs/interfaces.md).

    tokens [B, T] int32; attention_mask [B, T] bool (True = real token; prompts left-padded,
    responses right-padded); response_mask [B, T] bool (tokens the policy wrote and is trained on);
    token_rewards [B, T] float32 (environment rewards, before KL); group_ids [B] int32 (the problem);
    token_penalties [B, T] float32 or None: RLTF's fine-grained penalties kept apart from the outcome
    rewards, so they stay on their tokens whatever the estimator (see `rollout_statistics`).
    turn_ids [B, T] int32 or None: for multi-turn episodes, k on the tokens of reply k, -1 elsewhere;
    value_positions [B, K] int32 or None: the token index where reply k's value is read (-1 absent).
    Both are needed by the "turn" advantage and kl_form "turn_mean" (episode_batch.py builds them).
    baselines [B] float32 or None: the "greedy" advantage's baseline, the outcome reward of the
    greedy decode of row b's problem (loop.ppo_batch fills it).
    """

    tokens: Any
    attention_mask: Any
    response_mask: Any
    token_rewards: Any
    group_ids: Any
    token_penalties: Any = None
    turn_ids: Any = None
    value_positions: Any = None
    baselines: Any = None


def batch_from_rollout(prompt_tokens, prompt_mask, response_tokens, response_mask, response_rewards,
                       group_ids) -> PPOBatch:
    """Join a Rollout's left-padded prompts [B, P] and right-padded responses [B, N] (with
    `score_batch`'s rewards [B, N]) into a PPOBatch over [B, P + N] (host numpy)."""
    prompt_mask = np.asarray(prompt_mask, bool)
    response_mask = np.asarray(response_mask, bool)
    batch = prompt_mask.shape[0]
    if np.asarray(response_rewards).shape != response_mask.shape:
        raise ValueError(f"response_rewards {np.shape(response_rewards)} != response_mask {response_mask.shape}")
    return PPOBatch(
        tokens=np.concatenate([prompt_tokens, response_tokens], axis=1).astype(np.int32),
        attention_mask=np.concatenate([prompt_mask, response_mask], axis=1),
        response_mask=np.concatenate([np.zeros_like(prompt_mask), response_mask], axis=1),
        token_rewards=np.concatenate([np.zeros(prompt_mask.shape, np.float32),
                                      np.asarray(response_rewards, np.float32)], axis=1),
        group_ids=np.asarray(group_ids, np.int32).reshape(batch))


def complete_batch(batch: PPOBatch) -> PPOBatch:
    """Every optional field filled (one compiled signature): no `token_penalties` -> zeros, no turn
    structure -> turn_ids = -1 [B, T] and value_positions = -1 [B, 1], no baselines -> zeros [B]."""
    shape = np.shape(batch.token_rewards)
    if batch.token_penalties is None:
        batch = batch._replace(token_penalties=np.zeros(shape, np.float32))
    if batch.turn_ids is None:
        batch = batch._replace(turn_ids=np.full(shape, -1, np.int32))
    if batch.value_positions is None:
        batch = batch._replace(value_positions=np.full((shape[0], 1), -1, np.int32))
    if batch.baselines is None:
        batch = batch._replace(baselines=np.zeros(shape[0], np.float32))
    return batch


def padded_rows(rows: Sequence[tuple[np.ndarray, np.ndarray]], *, batch_size: int, length: int,
                pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The token arrays of a PPO batch, right-padded: ``rows`` are (token ids [n], response mask [n]).

    Returns tokens [batch_size, length] int32 (``pad_id`` after each row and on rows past
    ``len(rows)``), attention_mask and response_mask [batch_size, length] bool.
    """
    tokens = np.full((batch_size, length), pad_id, np.int32)
    attention = np.zeros((batch_size, length), bool)
    response = np.zeros((batch_size, length), bool)
    for row, (ids, mask) in enumerate(rows):
        n = len(ids)
        tokens[row, :n], attention[row, :n], response[row, :n] = ids, True, mask
    return tokens, attention, response
