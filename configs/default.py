"""The embedded default: RLTF on the shipped starter problems with SmolLM2-135M-Instruct, on a CPU.

`make train` runs this config: it measures held-out pass@1 (greedy), trains with the full RLTF
reward (coarse + fine-grained + adaptive) and PPO with group-normalised advantages, and measures
held-out pass@1 again. Every field can be overridden on the command line, e.g.
`python -m rltf_jax.train --config configs/default.py --config.total_steps=10 --workdir runs/x`.
"""

import ml_collections

from rltf_jax.ppo.types import PPOConfig
from rltf_jax.rewards.config import RewardConfig
from rltf_jax.rewards.rlef import RLEFRewardConfig
from rltf_jax.run.config_files import dataclass_block


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    # rltf: single-turn programs scored by unit tests (coarse / fine-grained / adaptive rewards);
    # rlef: multi-turn episodes with execution feedback on public tests, rewarded on private tests.
    config.method = "rltf"
    # Number of RL steps (one step = sample, execute, score, update). A resumed run continues to it.
    config.total_steps = 150
    # Wall-clock budget for training in minutes (held-out evaluation excluded; 0 = no limit): the
    # run ends, evaluated and checkpointed, before a step that would end past it. `make train`
    # trains for 15 minutes or 150 steps, whichever comes first (on a 2-core CPU the minutes).
    config.max_train_minutes = 15.0
    # XLA:CPU holds every compiled program's kernels in their own memory maps; past this fraction
    # of Linux's vm.max_map_count the trainer drops all compiled programs between steps (they
    # compile again when used) instead of crashing in the next compile (run_setup.py).
    config.release_compiled_code_at = 0.5

    # The policy. `name`: a registered name, a local HF folder, a .gguf file or a hub id.
    config.model = ml_collections.ConfigDict()
    config.model.name = "smollm2-135m-instruct"
    config.model.dtype = "float32"        # compute dtype of activations: float32 | bfloat16
    config.model.param_dtype = "float32"  # storage dtype of the trained parameters
    # Recompute decoder blocks in the backward pass: auto (only when attention scores would exceed
    # 2 GiB, e.g. RLEF's 3-turn conversations) | none | full.
    config.model.remat = "auto"

    # Device mesh: -1 takes every remaining device. Axes: data (batch), fsdp (batch + params), tensor.
    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1
    config.mesh.fsdp = 1
    config.mesh.tensor = 1

    # Problems. Specs as in `rltf_jax.data.load_problems` ("starter:train", "mbpp:PATH", ...).
    config.data = ml_collections.ConfigDict()
    config.data.train = "starter:train"
    config.data.heldout = "starter:heldout"
    config.data.prompt_style = "chat"     # chat (instruct models) | plain (completion of the signature)
    config.data.problems_per_step = 8     # distinct problems per RL step
    config.data.tests = "all"             # tests that score a training sample: all | public | private

    # Sampling of training programs.
    config.rollout = ml_collections.ConfigDict()
    config.rollout.samples_per_problem = 4   # K programs per problem (the GRPO / RLOO group)
    config.rollout.max_new_tokens = 128
    # RLTF sampled at T=0.6, top-p 0.95 for evaluation and found T=1.0 best for its 770M model's
    # training; a 135M chat model at T=1.0 mostly rambles (3-12% of samples pass where greedy
    # passes ~37%), so the default is cooler.
    config.rollout.temperature = 0.7
    config.rollout.top_p = 0.95
    config.rollout.top_k = 0
    # Stop a reply at the end of its first ``` block: a chat model's explanation after the code is
    # neither run nor trained on, and is most of its tokens (and of its truncations).
    config.rollout.stop_after_code_block = True
    # Generation dtype. Rollouts and held-out evaluation decode with bf16 weights (decoding is
    # memory-bound, so halving the weight bytes nearly halves a step); PPO recomputes log-probabilities with the float32 parameters.
    config.rollout.dtype = "bfloat16"
    # Execute step t's programs while step t+1's are generated. The next rollout then comes from
    # the policy before step t's update (one update stale), as RLTF's asynchronous generators were.
    config.rollout.overlap_execution = False

    # The sandbox service. An empty url starts a local one as a child process for the run.
    config.sandbox = ml_collections.ConfigDict()
    config.sandbox.url = ""                 # one URL or several separated by commas (replicas)
    config.sandbox.workers = 2
    config.sandbox.timeout_s = 4.0          # per test (RLTF/APPS used 4 s)
    config.sandbox.memory_mb = 1024
    config.sandbox.max_retries = 4

    # RLTF's rewards: RewardConfig's values (rltf_jax/rewards/config.py documents each field), with
    # per_token scaling: each blamed token gets the full -0.3, as in RLTF's code. With the
    # critic-free GRPO below the penalty is added to those tokens' advantages directly, so its
    # per-token size is what counts.
    config.rewards = dataclass_block(RewardConfig, fine_grained_scaling="per_token")

    # The PPO update: PPOConfig's defaults (rltf_jax/ppo/types.py documents each field), changed
    # where this run differs. `temperature` is not here: the update scores tokens at the sampler's
    # temperature, config.rollout.temperature.
    config.ppo = dataclass_block(
        PPOConfig, exclude=("temperature",),
        # critic-free: K samples per problem are their own baseline (no value head to train first)
        advantage="grpo",
        # a 135M policy moves little at 1e-6 in a 15-minute run; 1e-5 learns without collapsing
        # (docs/benchmarks.md, the learning experiment)
        lr=1e-5,
        warmup_steps=2,
        grad_accum=4,               # microbatches per optimizer step (memory)
        kl_coef=0.02,
        kl_estimator="k3",          # unbiased and never negative (Schulman's k3)
        # matmuls in bf16 with f32 accumulation, params and AdamW in f32: on a CPU the update is
        # most of a step (docs/benchmarks.md has the measured speed-up)
        compute_dtype="bfloat16",
        # the 4 replies to a problem packed behind one copy of its prompt, which is most of an
        # unpadded row (rltf_jax/ppo/shared_prompts.py; docs/benchmarks.md has the speed-up)
        share_prompts=True)

    # RLEF episodes (config.method = "rlef"; rltf_jax.rollout.episodes). Rewards: RLEFRewardConfig's
    # values (rltf_jax/rewards/rlef.py), per_token fine-grained scaling as above when it is turned on.
    config.rlef = ml_collections.ConfigDict()
    config.rlef.max_turns = 3
    config.rlef.reuse_kv_cache = True  # turn k+1 prefills only the new tokens (sampling/conversation_cache.py)
    config.rlef.rewards = dataclass_block(RLEFRewardConfig, fine_grained_scaling="per_token")

    # Replay of recent samples (RLTF kept a FIFO of 6,400 generated programs).
    config.buffer = ml_collections.ConfigDict()
    config.buffer.size = 6400
    config.buffer.replay_samples = 0        # older samples mixed into each update (0: on-policy)

    # Supervised loss on reference solutions, interleaved as RLTF did (0 disables it).
    config.supervised = ml_collections.ConfigDict()
    config.supervised.every = 0             # a supervised step after every N RL steps
    config.supervised.batch_size = 8

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every = 10
    config.checkpoint.max_to_keep = 2
    config.checkpoint.best_metric = "heldout/pass@1"
    config.checkpoint.async_save = True

    # Held-out evaluation (greedy pass@1 through the sandbox).
    config.eval = ml_collections.ConfigDict()
    config.eval.before_and_after = True
    config.eval.every = 0                   # also every N steps (0: only before and after)
    config.eval.max_problems = 0            # 0: all held-out problems
    config.eval.max_new_tokens = 256
    config.eval.batch_size = 32

    config.log = ml_collections.ConfigDict()
    config.log.progress = True
    config.log.compile_log = True           # log every jit compilation (recompile storms show)
    return config
