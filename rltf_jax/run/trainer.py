"""The Trainer: builds every part of a run from its config and drives the online RL loop.

    problems ─▶ prompts ─▶ Sampler (jitted) ─▶ programs ─▶ sandbox (HTTP) ─▶ verdicts
        ▲                                                                      │
        │     checkpoint ◀─ PPO update (jitted) ◀─ token rewards ◀─────────────┘

Resuming: step ``s`` draws its problems and its sampling key from ``(seed, s)`` alone, and the
TrainState (policy, value, reference, optimizer, PPO key, KL coefficient) comes back from the
checkpoint, so a resumed run repeats exactly what an uninterrupted one would have done
(with ``rollout.overlap_execution`` the first resumed rollout is one update fresher).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import math
import os
import time

import jax

from rltf_jax.data import load_problems
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox
from rltf_jax.evaluation.single_turn import evaluate_problems
from rltf_jax.models import load_model
from rltf_jax.parallel import mesh as sharding
from rltf_jax.parallel import multihost
from rltf_jax.ppo import (
    PPOBatch,
    PPOConfig,
    complete_batch,
    init_train_state,
    make_update,
    train_state_shardings,
    update_kl_coef,
)
from rltf_jax.ppo.length_groups import split_by_length
from rltf_jax.ppo.shared_prompts import pack_shared_prompts
from rltf_jax.ppo.supervised_update import make_supervised_update
from rltf_jax.rollout.methods import RolloutContext, check_method, make_method
from rltf_jax.rollout.single_turn import ProblemStream
from rltf_jax.rollout.supervised import supervised_batch
from rltf_jax.run import setup as run_setup
from rltf_jax.run.checkpoint import Checkpointer, CheckpointOptions, abstract_like, model_identity
from rltf_jax.run.control import TrainBudget, stop_on_sigint
from rltf_jax.run.metrics import MetricsLogger, read_metrics
from rltf_jax.sampling import Sampler, SamplingParams

_LOG = logging.getLogger("rltf_jax.run.trainer")
SUMMARY_KEYS = ("reward/outcome", "samples/pass_rate", "episodes/final_pass_rate", "kl/k3", "loss/policy")


class Trainer:
    """One training run in ``workdir``; use as a context manager (it owns a sandbox and files)."""

    def __init__(self, config, workdir: str, *, resume: bool = True):
        self.config = config
        self.workdir = os.path.abspath(workdir)
        self.resume = resume
        self._stack = contextlib.ExitStack()
        self._times: dict[str, float] = {}  # per-phase seconds since the last logged step

    # ------------------------------------------------------------------------------- set-up
    def __enter__(self) -> "Trainer":
        try:
            return self._set_up()
        except BaseException:
            self._stack.close()  # a failed set-up still stops the sandbox and closes files
            raise

    def _set_up(self) -> "Trainer":
        config = self.config
        run_setup.initialize_distributed()
        run_setup.watch_compiles()
        os.makedirs(self.workdir, exist_ok=True)
        self.is_main = jax.process_index() == 0
        self.mesh = sharding.make_mesh(**_mesh_sizes(config.mesh))
        self.loaded = load_model(config.model.name, dtype=config.model.dtype,
                                 param_dtype=config.model.param_dtype, mesh=self.mesh,
                                 remat=config.model.get("remat", "auto"))
        self.tokenizer = self.loaded.tokenizer
        # The update scores tokens under the distribution they were sampled from: softmax(logits / T).
        self.ppo_config = PPOConfig(**{"temperature": config.rollout.temperature, **config.ppo.to_dict()})
        check_method(config.method)
        state, self.defs = init_train_state(self.loaded, self.ppo_config, seed=config.seed)
        self.state = jax.device_put(state, train_state_shardings(state, self.mesh))
        self.identity = model_identity(config.model.name, self.loaded.config)

        self.checkpointer = Checkpointer(os.path.join(self.workdir, "checkpoints"), CheckpointOptions(
            max_to_keep=config.checkpoint.max_to_keep, best_metric=config.checkpoint.best_metric or None,
            async_save=config.checkpoint.async_save))
        self._stack.callback(self.checkpointer.close)
        self.start_step, self.history = 0, {}
        if self.resume and self.checkpointer.latest_step() is not None:
            self.state, meta = self.checkpointer.restore(abstract_like(self.state),
                                                         expected_identity=self.identity)
            self.start_step, self.history = int(meta["step"]), dict(meta.get("history", {}))
            _LOG.info("resumed from %s at step %d", self.checkpointer.directory, self.start_step)

        self.train_problems = load_problems(config.data.train)
        self.heldout_problems = load_problems(config.data.heldout) if config.data.heldout else []
        self.stream = ProblemStream(self.train_problems, config.data.problems_per_step, config.seed)
        self._check_multiprocess(config)
        # Each process samples its own share of a step on its own devices (rltf_jax/multihost.py).
        sampler_mesh = self.mesh if jax.process_count() == 1 else sharding.make_mesh(
            data=jax.local_device_count(), fsdp=1, devices=jax.local_devices())
        self.sampler = Sampler(self.loaded, mesh=sampler_mesh, dtype=config.rollout.dtype)
        self.sampler.set_weights(self.state.policy)
        self.update = make_update(self.defs, self.ppo_config, mesh=self.mesh, state=self.state)
        self.supervised_update = None
        if config.method == "supervised" or config.supervised.every:
            self.supervised_update = make_supervised_update(self.defs, self.ppo_config, mesh=self.mesh,
                                                            state=self.state)
        self.client = self._sandbox_client()
        self.rollouts = make_method(config.method, RolloutContext(
            config=config, ppo_config=self.ppo_config, sampler=self.sampler, tokenizer=self.tokenizer,
            client=self.client, params=self.sampling_params(), limits=self.limits, pad_id=self.pad_id,
            stop_ids=self.loaded.config.eos_token_ids))
        self.logger = MetricsLogger(self.workdir, total_steps=config.total_steps, start_step=self.start_step,
                                    enabled=self.is_main, progress=config.log.progress)
        self._stack.callback(self.logger.close)
        self.spent_train_seconds = self._resumed_train_seconds()
        if self.start_step:
            self.logger.log_event("resumed", {"step": self.start_step,
                                              "train_minutes": self.spent_train_seconds / 60.0})
        if self.is_main:
            with open(os.path.join(self.workdir, "config.json"), "w", encoding="utf-8") as handle:
                handle.write(config.to_json(indent=2))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _check_multiprocess(self, config) -> None:
        count = jax.process_count()
        if self.ppo_config.share_prompts and config.method == "rlef":
            raise ValueError("ppo.share_prompts packs single-turn rows; RLEF's episodes need "
                             "--config.ppo.share_prompts=False")
        if count == 1:
            return
        if self.ppo_config.share_prompts:
            raise ValueError("ppo.share_prompts packs each prompt's replies within one process; a "
                             "multi-process run needs --config.ppo.share_prompts=False")
        if config.buffer.replay_samples:
            raise ValueError("buffer.replay_samples > 0 is not supported in multi-process runs yet")
        multihost.process_share(range(config.data.problems_per_step))  # divisible by the process count
        if (config.method == "supervised" or config.supervised.every) and config.supervised.batch_size % count:
            raise ValueError(f"supervised.batch_size={config.supervised.batch_size} rows cannot be split "
                             f"evenly over {count} processes; make it a multiple of the process count")

    def _sandbox_client(self) -> SandboxClient:
        sandbox = self.config.sandbox
        urls = [u.strip() for u in sandbox.url.split(",") if u.strip()]
        if not urls:
            urls = [self._stack.enter_context(local_sandbox(workers=sandbox.workers))]
        return self._stack.enter_context(SandboxClient(urls, max_retries=sandbox.max_retries))

    # --------------------------------------------------------------------------------- parts
    @contextlib.contextmanager
    def _timed(self, name: str):
        """Adds the block's wall seconds to ``time/<name>_s`` of the step being logged next."""
        start = time.perf_counter()
        try:
            yield
        finally:
            key = f"time/{name}_s"
            self._times[key] = self._times.get(key, 0.0) + time.perf_counter() - start

    @property
    def limits(self) -> dict:
        return {"timeout_s": self.config.sandbox.timeout_s, "memory_mb": self.config.sandbox.memory_mb}

    def sampling_params(self) -> SamplingParams:
        rollout = self.config.rollout
        return SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                              top_p=rollout.top_p, top_k=rollout.top_k,
                              stop_after_code_block=rollout.stop_after_code_block)

    def step_key(self, step: int) -> jax.Array:
        return jax.random.fold_in(jax.random.key(self.config.seed), step)

    def generate(self, step: int):
        """Step ``step``'s rollout (this process's share): its problems and key come from (seed, step)."""
        with self._timed("generate"):
            return self.rollouts.generate(step, self.stream.for_step(step), self.step_key(step))

    def execute(self, rollout):
        with self._timed("execute"):
            return self.rollouts.execute(rollout)

    def evaluate_heldout(self, label: str) -> dict[str, float]:
        """Greedy pass@1 on the held-out problems (the first ``eval.max_problems`` if set)."""
        problems = self.heldout_problems
        if self.config.eval.max_problems:
            problems = problems[: self.config.eval.max_problems]
        if not problems:
            return {}
        scores = evaluate_problems(
            self.sampler, self.client, problems, tokenizer=self.tokenizer, temperature=0.0,
            max_new_tokens=self.config.eval.max_new_tokens, style=self.config.data.prompt_style,
            batch_size=self.config.eval.batch_size, limits=self.limits, progress=False,
            stop_after_code_block=self.config.rollout.stop_after_code_block)
        result = {"heldout/pass@1": float(scores["pass@1"]), "heldout/problems": float(len(problems)),
                  "heldout/sandbox_errors": float(scores["sandbox_errors"])}
        self.logger.log_event(f"eval_{label}", result)
        return result

    def checkpoint(self, step: int, metrics: dict | None = None, *, force: bool = False) -> None:
        meta = {"step": step, "model_identity": self.identity, "history": self.history,
                "data_position": self.stream.position(step), "config": json.loads(self.config.to_json())}
        self.checkpointer.save(step, self.state, meta, metrics=metrics, force=force)

    def _resumed_train_seconds(self) -> float:
        """Training seconds already spent before ``start_step`` (0 for a fresh run): from the
        checkpoint, or for checkpoints older than that field from the step's metrics record."""
        if not self.start_step:
            return 0.0
        if "train_seconds" in self.history:
            return float(self.history["train_seconds"])
        path = os.path.join(self.workdir, "metrics.jsonl")
        if not os.path.exists(path):
            return 0.0
        record = next((r for r in reversed(read_metrics(path)) if r["step"] == self.start_step), {})
        return 60.0 * float(record.get("time/train_minutes", 0.0))

    # ---------------------------------------------------------------------------------- loop
    def train_step(self, step: int, rollout, results) -> dict[str, float]:
        """Turns one executed rollout into training input and applies the update; returns the step's metrics."""
        config = self.config
        score_started = time.perf_counter()
        data = self.rollouts.to_batch(step, rollout, results)
        if data.ppo is None:  # a supervised step on the step's reference solutions
            metrics = {**data.metrics, **self.supervised_step(data.supervised)}
            metrics["time/score_s"] = time.perf_counter() - score_started
            return metrics
        metrics = data.metrics
        batch = self.length_grouped(data.ppo)
        update_started = time.perf_counter()
        self.state, update_metrics = self.update(self.state, batch)
        update_metrics = jax.device_get(update_metrics)
        update_ended = time.perf_counter()
        if self.ppo_config.adaptive_kl:
            rows = config.data.problems_per_step * config.rollout.samples_per_problem
            self.state = update_kl_coef(self.state, float(update_metrics["kl/seq_k1"]), rows,
                                        self.ppo_config)
        if config.supervised.every and (step + 1) % config.supervised.every == 0:
            # (a process's rollout holds its share only; the supervised batch is built from all)
            problems = (list({p.id: p for p in getattr(rollout, "problems", [])}.values())
                        if jax.process_count() == 1 else []) or self.stream.for_step(step)
            update_metrics.update(self.supervised_step(problems, set_weights=False))
        self.sampler.set_weights(self.state.policy)
        metrics.update({k: float(v) for k, v in update_metrics.items()})
        metrics.update({"time/score_s": update_started - score_started,
                        "time/update_s": update_ended - update_started})
        return metrics

    def length_grouped(self, batch: PPOBatch):
        """This process's batch -> the update's input: one PPOBatch, `ppo.length_groups` groups of
        rows of similar length (length_groups.py), as global arrays in a multi-process run, or the
        rows packed behind their shared prompts (`ppo.share_prompts`, one process)."""
        groups = self.ppo_config.length_groups
        per_step = self.ppo_config.num_minibatches * self.ppo_config.grad_accum
        if self.ppo_config.share_prompts:
            # packed rows are sharded over the batch axis like the rows: their count must divide
            devices = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
            return pack_shared_prompts(batch, per_step, packed_rows_multiple=devices // math.gcd(devices, per_step))
        if groups == 1:
            return multihost.global_batch(complete_batch(batch), self.mesh, sharding.BATCH_AXES)
        parts = split_by_length(batch, groups, rows_multiple=per_step, agree=multihost.agree_max)
        return tuple(multihost.global_batch(p, self.mesh, sharding.BATCH_AXES) for p in parts)

    def supervised_step(self, problems, *, set_weights: bool = True) -> dict[str, float]:
        """One supervised step on the reference solutions of `problems` (config.supervised)."""
        started = time.perf_counter()
        batch = supervised_batch(problems, self.tokenizer, batch_size=self.config.supervised.batch_size,
                                 pad_id=self.pad_id, style=self.config.data.prompt_style)
        if jax.process_count() > 1:  # every process built the same rows: each hands in its share
            rows, first = multihost.process_share(range(len(batch["tokens"])))
            batch = multihost.global_batch({k: v[first:first + len(rows)] for k, v in batch.items()},
                                           self.mesh, sharding.BATCH_AXES)
        self.state, metrics = self.supervised_update(self.state, batch)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if set_weights:
            self.sampler.set_weights(self.state.policy)
        metrics["time/supervised_s"] = time.perf_counter() - started
        return metrics

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.loaded.config.eos_token_ids[0])

    def _close_step(self, metrics: dict, budget: TrainBudget, step_started: float) -> float:
        """Adds the step's phase times, compile statistics and training minutes to ``metrics`` and
        charges the step (held-out evaluation excluded) to ``budget``; returns the next step's start."""
        now = time.perf_counter()
        metrics.update(self._times, **run_setup.compile_stats(),
                       **run_setup.release_compiled_code(self.config.get("release_compiled_code_at", 0.5)))
        metrics["time/step_s"] = now - step_started
        budget.add(now - step_started - self._times.get("time/eval_s", 0.0))
        metrics["time/train_minutes"] = budget.minutes
        self.history["train_seconds"] = budget.seconds  # a resumed run keeps its budget
        self._times = {}
        return now

    def run(self) -> dict:
        """Trains to ``config.total_steps``; the first Ctrl-C stops at the end of the current step
        with a checkpoint (a second one interrupts at once)."""
        config = self.config
        if self.start_step == 0 and config.eval.before_and_after and "before" not in self.history:
            self.history["before"] = self.evaluate_heldout("before")
        step = self.start_step
        with stop_on_sigint() as stop_requested, concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="sandbox") as pool:
            pending = self.generate(step) if step < config.total_steps else None
            step_started = time.perf_counter()
            budget = TrainBudget(config.get("max_train_minutes", 0.0),
                                 spent_seconds=self.spent_train_seconds)
            budget_reached = False
            while pending is not None and not stop_requested():
                execution = pool.submit(self.execute, pending)
                upcoming = None
                if config.rollout.overlap_execution and step + 1 < config.total_steps:
                    upcoming = self.generate(step + 1)  # runs while the sandbox judges `pending`
                with self._timed("execute_wait"):
                    results = execution.result()
                metrics = self.train_step(step, pending, results)
                step += 1
                if config.eval.every and step % config.eval.every == 0 and step < config.total_steps:
                    with self._timed("eval"):
                        metrics.update(self.evaluate_heldout(f"step_{step}"))
                if upcoming is None and step < config.total_steps and not stop_requested():
                    if budget.exhausted(time.perf_counter() - step_started - self._times.get("time/eval_s", 0.0)):
                        budget_reached = True
                    else:
                        upcoming = self.generate(step)
                step_started = self._close_step(metrics, budget, step_started)
                continuing = upcoming is not None and not stop_requested()
                if step % config.checkpoint.every == 0 and continuing:  # the last step saves below
                    with self._timed("checkpoint"):
                        self.checkpoint(step)
                self.logger.log(step, metrics, summary_keys=SUMMARY_KEYS)
                pending = upcoming
            interrupted = step < config.total_steps and not budget_reached
            if budget_reached:
                _LOG.info("training time budget of %.1f min reached after step %d (%.1f min)",
                          budget.limit_minutes, step, budget.minutes)
        if interrupted:
            _LOG.warning("stopped by Ctrl-C after step %d: checkpoint saved", step)
            self.logger.log_event("interrupted", {"step": step})
        elif config.eval.before_and_after and self.history.get("after", {}).get("step") != step:
            self.history["after"] = {"step": step, **self.evaluate_heldout("after")}
        final_metrics = {k: v for k, v in self.history.get("after", {}).items() if k != "step"}
        self.checkpoint(step, final_metrics if not interrupted and final_metrics else None, force=True)
        self.checkpointer.wait()
        summary = {"step": step, "workdir": self.workdir, "interrupted": interrupted,
                   "heldout_pass@1_before": self.history.get("before", {}).get("heldout/pass@1"),
                   "heldout_pass@1_after": self.history.get("after", {}).get("heldout/pass@1")}
        if self.is_main:
            with open(os.path.join(self.workdir, "summary.json"), "w", encoding="utf-8") as handle:
                json.dump(summary, handle, indent=2)
        return summary


def _mesh_sizes(mesh_config) -> dict[str, int | None]:
    """The config's mesh block (-1: every remaining device) as make_mesh arguments."""
    sizes = {axis: int(mesh_config[axis]) for axis in ("data", "fsdp", "tensor")}
    return {axis: (None if size == -1 else size) for axis, size in sizes.items()}
