"""RLEF on the starter set: multi-turn episodes (up to 3 replies, public-test feedback between them),
rewarded +1 / -1 on private tests and -0.2 per reply without code; PPO with a KL penalty to the
initial policy (Gehring et al. 2024). As in RLEF, a value is predicted per turn (at the last prompt
token before each reply) and every token of a reply gets that turn's advantage (`ppo.advantage =
"turn"`); `"gae"` gives token-level values instead, `"grpo"` / `"rloo"` no critic at all."""

from rltf_jax.run.config_files import sibling_config


def get_config():
    config = sibling_config(__file__, "default")
    config.method = "rlef"
    config.rlef.max_turns = 3
    config.ppo.kl_coef = 0.05
    config.ppo.advantage = "turn"
    # The per-turn value head starts at zero; at the policy's lr it would barely move in a CPU-sized
    # run. Critics usually learn an order of magnitude faster than the policy (OpenRLHF's defaults).
    config.ppo.value_lr = 1e-4
    config.ppo.kl_form = "token"        # or "turn_mean": RLEF's geometric-mean ratio per reply
    # Episodes of 1 and of 3 replies differ several-fold in length: run the update's model passes on
    # two groups of rows sorted by length (the same update, faster: docs/benchmarks.md, RLEF), not
    # the default's packed prompts (single-turn rows only).
    config.ppo.share_prompts = False
    config.ppo.length_groups = 2
    # The update in bfloat16 (float32 parameters and optimizer); its speed and its agreement with the
    # float32 update are in docs/benchmarks.md, RLEF.
    config.ppo.compute_dtype = "bfloat16"
    return config
