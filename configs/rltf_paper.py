"""RLTF's own objective (Liu et al. 2023, following CodeRL), as closely as this model allows.

Their trainer (`trainers/trainer_rl_online_v1.py`, `datasets/apps_dataset_online_v1.py`, run with
`--relative_returns --fine_grained_feedback --fine_grained_weight 0.3 --adaptive_feedback`):

    r_t  = q_t · (R(sample) - 0.3 · mask_t - R(greedy decode of the same problem))
    loss = -mean_t(log π(w_t) · r_t),   alternating step by step with cross-entropy on references

Here: the "greedy" advantage (each problem's greedy decode is judged in the same step; its
adaptive outcome reward is the baseline), the fine-grained -0.3 on every blamed token added to
those tokens' advantages (`fine_grained_scaling="per_token"`, their α == 1), the plain
policy-gradient loss (no ratio, one pass, a mean over the batch's response tokens), no KL term, no
advantage whitening, and a supervised step on reference solutions after every RL step (their
50/50 alternation).

What differs, and why:
- no q_t: their weight is a frozen CodeRL critic's probability of the observed outcome; no critic
  is trained for this model (q_t = 1);
- on-policy: they trained on draws from a FIFO of 6,400 generated programs refreshed every 50
  steps (stale by up to ~10 minutes of generation); here every update uses the step's own samples
  (`buffer.replay_samples` can mix older ones in, without an importance ratio);
- sampling and step size stay the default's (T = 0.7, 4 samples per problem, lr 1e-5), chosen
  for this 135M chat model; theirs were T = 1.0, 20 samples, lr 2e-6 for CodeT5-770M.
"""

from rltf_jax.run.config_files import sibling_config


def get_config():
    return paper_objective(sibling_config(__file__, "default"))


def paper_objective(config):
    """Sets ``config``'s objective to RLTF's own (the rest of the config is kept); returns it."""
    config.ppo.advantage = "greedy"
    config.ppo.policy_loss = "pg"
    config.ppo.normalize_advantages = False
    config.ppo.epochs = 1
    config.ppo.num_minibatches = 1
    config.ppo.kl_coef = 0.0
    config.ppo.adaptive_kl = False
    config.rewards.adaptive = True
    config.rewards.fine_grained = True
    config.rewards.fine_grained_penalty = -0.3
    config.rewards.fine_grained_scaling = "per_token"
    config.supervised.every = 1
    return config
