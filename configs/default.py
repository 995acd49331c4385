"""The embedded default: RLTF on the shipped starter problems with SmolLM2-135M-Instruct, on a CPU.

`make train` runs this config: it measures held-out pass@1 (greedy), trains with the full RLTF
reward (coarse + fine-grained + adaptive) and PPO with group-normalised advantages, and measures
held-out pass@1 again. Every field can be overridden on the command line, e.g.
`python -m rltf_jax.train --config configs/default.py --config.total_steps=10 --workdir runs/x`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    # rltf: single-turn programs scored by unit tests (coarse / fine-grained / adaptive rewards);
    # rlef: multi-turn episodes with execution feedback on public tests, rewarded on private tests.
    config.method = "rltf"
    # Number of RL steps (one step = sample, execute, score, update). A resumed run continues to it.
    config.total_steps = 40
    # Wall-clock budget for training in minutes (held-out evaluation excluded; 0 = no limit): the
    # run ends, evaluated and checkpointed, before a step that would end past it. `make train`
    # trains for 15 minutes or 40 steps, whichever comes first.
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
    # memory-bound: ~2x faster); PPO recomputes log-probabilities with the float32 parameters.
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

    # RLTF's rewards (rltf_jax.rewards.RewardConfig).
    config.rewards = ml_collections.ConfigDict()
    config.rewards.syntax_error = -1.0
    config.rewards.runtime_error = -0.6
    config.rewards.failed_tests = -0.3
    config.rewards.passed = 1.0
    config.rewards.adaptive = True
    config.rewards.fine_grained = True
    config.rewards.fine_grained_penalty = -0.3
    # per_token: each blamed token gets the full -0.3 (RLTF's code). With the critic-free GRPO below
    # the penalty is added to those tokens' advantages directly, so its per-token size is what counts.
    config.rewards.fine_grained_scaling = "per_token"

    # The PPO update (rltf_jax.ppo.update.PPOConfig; the field names are its own).
    config.ppo = ml_collections.ConfigDict()
    # gae (needs a value model) | grpo | rloo | greedy (the reward of each problem's greedy decode as
    # baseline: CodeRL / RLTF, configs/rltf_paper.py) | turn (RLEF)
    config.ppo.advantage = "grpo"
    config.ppo.policy_loss = "clip"         # clip (PPO) | pg (plain -A log π, one pass: CodeRL / RLTF)
    config.ppo.normalize_advantages = True  # whiten advantages over the batch's response tokens
    config.ppo.lr = 1e-5                    # measured: +28 points held-out in 45 steps (docs/benchmarks.md)
    # The value head's / critic's learning rate (None: ppo.lr). Used by gae and turn advantages only.
    config.ppo.value_lr = ml_collections.config_dict.placeholder(float)
    config.ppo.warmup_steps = 2
    config.ppo.weight_decay = 0.0
    config.ppo.max_grad_norm = 1.0
    config.ppo.epochs = 1
    config.ppo.num_minibatches = 1
    config.ppo.grad_accum = 4               # microbatches per optimizer step (memory)
    config.ppo.clip_eps = 0.2
    config.ppo.value_clip = 0.2
    config.ppo.vf_coef = 0.1
    config.ppo.ent_coef = 0.0
    config.ppo.gamma = 1.0
    config.ppo.lam = 0.95
    config.ppo.kl_coef = 0.02
    config.ppo.kl_estimator = "k3"          # k1 | k2 | k3
    config.ppo.kl_mode = "reward"           # reward (β·KL in the per-token reward) | loss
    config.ppo.kl_form = "token"            # token | turn_mean (RLEF: per-reply mean log-ratio)
    config.ppo.adaptive_kl = False
    config.ppo.kl_target = 6.0
    # float32 | bfloat16: the update's matmuls in bf16 with f32 accumulation, params and AdamW in f32
    # (on this CPU the update is most of a step; docs/benchmarks.md has the measured speed-up).
    config.ppo.compute_dtype = "bfloat16"
    config.ppo.value_mode = "shared"        # shared (head on the policy's hidden) | separate
    # Rows sorted by length into this many groups, each padded to its own longest row (the update's
    # forward/backward per group; advantages over all rows): rltf_jax/length_groups.py. 1 = off.
    config.ppo.length_groups = 2

    # RLEF episodes (config.method = "rlef"; rltf_jax.rollout.episodes, rltf_jax.rewards.rlef).
    config.rlef = ml_collections.ConfigDict()
    config.rlef.max_turns = 3
    config.rlef.reuse_kv_cache = True  # turn k+1 prefills only the new tokens (conversation_cache)
    config.rlef.rewards = ml_collections.ConfigDict()
    config.rlef.rewards.passed = 1.0
    config.rlef.rewards.failed = -1.0
    config.rlef.rewards.no_code = -0.2
    config.rlef.rewards.repeated_code = 0.0   # per reply resubmitting the failed program (0: RLEF's rules)
    config.rlef.rewards.fine_grained = False  # RLTF's per-line penalties on every turn's code too
    config.rlef.rewards.fine_grained_penalty = -0.3
    config.rlef.rewards.fine_grained_scaling = "per_token"

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
