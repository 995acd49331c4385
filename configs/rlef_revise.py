"""RLEF (configs/rlef.py) plus a penalty on replies that resubmit the previous reply's program.

A revision is only asked for after the previous program failed the public tests, so resubmitting
it unchanged (the same syntax tree) is certain to fail again; SmolLM2-135M after 15 RLEF updates
did that in 29 of 41 revisions on the held-out starter problems. `rlef.rewards.repeated_code`
puts -0.5 on such a reply (rltf_jax/rewards/rlef.py); every other rule is RLEF's."""

from rltf_jax.run.config_files import sibling_config


def get_config():
    config = sibling_config(__file__, "rlef")
    config.rlef.rewards.repeated_code = -0.5
    return config
