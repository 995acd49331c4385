"""RLEF's multi-turn episodes (Gehring et al. 2024): write code, read execution feedback, fix it.

One episode per (problem, sample), all run together, turn by turn:

    turn k:  prompt_k  = chat template over [user task, reply_1, feedback_1, ..., feedback_{k-1}]
             replies   = source.generate(prompts of all still-active episodes)      # one call
                         (each episode samples with its own step-wide row id, so what it draws
                         does not depend on which other episodes are still running)
             results   = sandbox.execute_batch(each reply's code on its *public* tests)
             (+ one batched round of call-mode probes for the actual values of wrong answers)
             an episode ends when its code passes the public tests, at k == max_turns,
             or when the problem has no public tests; otherwise feedback_k is appended
    end:     the last reply's code runs on the *private* tests (one batch) -> final_passed

The token sequence PPO trains on (`Episode.token_sequence`) is the conversation as the model saw
it, built by concatenating ids, never by re-encoding replies:

    env_1 ⧺ reply_1 ⧺ env_2 ⧺ reply_2 ⧺ ...      env_1 = the turn-1 prompt ids the sampler used,
                                                 env_k = ids of the text prompt_k adds after reply_{k-1}

so every reply's tokens are exactly the sampled ones. From turn 2 on the source is handed those
joined ids as the prompt (``generate(..., prompt_ids=...)``), so the model samples reply k
conditioned on exactly the tokens PPO later scores it under. ``Turn.context_matches`` records
whether the prompt the source used equals ``env_1 ⧺ ... ⧺ env_k`` (always, for sources that take
ids; for one that re-encodes text it can differ where a sampled reply is not the tokenizer's
canonical encoding of its text).

`ReplySource` is what produces replies: the real `Sampler` satisfies it, and `TextReplies`
replays given reply texts through the same path (deterministic content for tests and ablations).
A `sandbox_error` (the service failed) marks the episode ``dropped``: it is never scored.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol, Sequence

import jax
import numpy as np

from rltf_jax.data.problem import Problem
from rltf_jax.env.feedback import FeedbackConfig, feedback_message, probed_value, return_value_probe
from rltf_jax.env.prompts import ExtractedCode, build_prompt, extract_code
from rltf_jax.env.requests import judge_request
from rltf_jax.env.sandbox_client import ExecutionRequest, ExecutionResult
from rltf_jax.sampling import Rollout, SamplingParams

FEEDBACK_MODES = ("real", "random")


class ReplySource(Protocol):
    """Anything that answers prompts like `rltf_jax.sampling.sampler.Sampler.generate`."""

    def generate(self, prompts: list[str], params: SamplingParams, rng, *,
                 prompt_ids: Sequence[Sequence[int]] | None = None,
                 row_ids: Sequence[int] | None = None) -> Rollout: ...


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
    """How episodes run.

    Attributes:
      max_turns: replies per episode at most (RLEF: 3).
      system_prompt: the system turn (None: the chat template's default).
      limits: sandbox limits for public and private tests ({"timeout_s", "memory_mb", ...}).
      feedback: what the feedback message shows and its budgets.
      feedback_mode: "real" | "random" (ablation: the message is real feedback of another problem,
        drawn from this run's feedback so far; the episode still stops on its own public pass).
      probe_return_values: show the actual return value of call-mode wrong answers (probes).
      seed: seed of the random-feedback draws.
      reuse_kv_cache: keep each episode's KV cache on device between turns, so turn k+1 prefills only
        the feedback message and the new turn header (conversation_cache; reply sources that keep
        caches: `Sampler.keeps_conversation_cache`). The replies are sampled under the same
        distribution either way; False prefills the whole conversation every turn.
    """

    max_turns: int = 3
    system_prompt: str | None = None
    limits: dict = dataclasses.field(default_factory=lambda: {"timeout_s": 4.0, "memory_mb": 512})
    feedback: FeedbackConfig = FeedbackConfig()
    feedback_mode: str = "real"
    probe_return_values: bool = True
    seed: int = 0
    reuse_kv_cache: bool = True

    def __post_init__(self):
        if self.max_turns < 1:
            raise ValueError(f"EpisodeConfig.max_turns must be ≥ 1, got {self.max_turns}")
        if self.feedback_mode not in FEEDBACK_MODES:
            raise ValueError(f"EpisodeConfig.feedback_mode={self.feedback_mode!r} not in {FEEDBACK_MODES}")


@dataclasses.dataclass
class Turn:
    """One reply of an episode and what the environment said about it.

    env_ids [e_k] int32: tokens the environment added before this reply (turn 1: the whole prompt).
    reply_ids [n_k] int32, reply_logprobs [n_k] float32: the sampled reply (up to its stop token).
    """

    prompt: str
    env_ids: np.ndarray
    reply_ids: np.ndarray
    reply_logprobs: np.ndarray
    text: str
    truncated: bool
    extracted: ExtractedCode | None
    context_matches: bool = True
    public_result: ExecutionResult | None = None
    feedback: str | None = None           # the message appended after this reply
    feedback_from: str | None = None      # the problem whose execution produced that message


@dataclasses.dataclass
class Episode:
    """A conversation on one problem; ``group_id`` numbers the problem within the step, ``row_id``
    the episode (its sampling row: `Sampler.generate(row_ids=...)`)."""

    problem: Problem
    group_id: int
    row_id: int = 0
    turns: list[Turn] = dataclasses.field(default_factory=list)
    private_result: ExecutionResult | None = None
    dropped: bool = False                 # a sandbox_error hit it: never scored

    @property
    def final_code(self) -> ExtractedCode | None:
        return self.turns[-1].extracted if self.turns else None

    @property
    def final_passed(self) -> bool:
        """The last reply's code passed every private test."""
        return self.private_result is not None and self.private_result.verdict == "pass"

    def turn_passed_public(self, k: int) -> bool:
        result = self.turns[k].public_result
        return result is not None and result.verdict == "pass"

    def token_sequence(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The joined conversation (module docstring).

        Returns:
          tokens [T] int32; response_mask [T] bool (True on reply tokens only);
          turn_ids [T] int32 (k on reply k's tokens, -1 on environment tokens);
          value_positions [K] int32 (index of the last environment token before reply k).
        """
        tokens, mask, turn_ids, positions = [], [], [], []
        length = 0
        for k, turn in enumerate(self.turns):
            if len(turn.env_ids) == 0:
                raise ValueError(f"episode on {self.problem.id}: turn {k} has no prompt tokens")
            tokens += [turn.env_ids, turn.reply_ids]
            mask += [np.zeros(len(turn.env_ids), bool), np.ones(len(turn.reply_ids), bool)]
            turn_ids += [np.full(len(turn.env_ids), -1, np.int32), np.full(len(turn.reply_ids), k, np.int32)]
            length += len(turn.env_ids)
            positions.append(length - 1)
            length += len(turn.reply_ids)
        return (np.concatenate(tokens).astype(np.int32), np.concatenate(mask),
                np.concatenate(turn_ids), np.asarray(positions, np.int32))


class TextReplies:
    """A ReplySource that answers with given texts: ``reply_for(prompt) -> reply text``.

    Prompts are encoded as the Sampler encodes them; each reply is its canonical
    encoding followed by ``stop_id``; log-probabilities are 0 (not sampled).
    """

    def __init__(self, tokenizer, reply_for: Callable[[str], str], stop_id: int | None = None):
        self.tokenizer = tokenizer
        self.reply_for = reply_for
        self.stop_id = tokenizer.eos_token_id if stop_id is None else stop_id
        if self.stop_id is None:
            raise ValueError("TextReplies needs a stop_id (the tokenizer has no eos_token_id)")

    def generate(self, prompts: list[str], params: SamplingParams, rng, *,
                 prompt_ids: Sequence[Sequence[int]] | None = None,
                 row_ids: Sequence[int] | None = None) -> Rollout:
        del rng, row_ids
        bos = self.tokenizer.bos_token
        if prompt_ids is None:
            prompt_ids = [self.tokenizer(p, add_special_tokens=not (bos and p.startswith(bos)))["input_ids"]
                          for p in prompts]
        prompt_ids = [list(map(int, ids)) for ids in prompt_ids]
        texts = [self.reply_for(p) for p in prompts]
        reply_ids = [(self.tokenizer.encode(t, add_special_tokens=False) + [self.stop_id])[:params.max_new_tokens]
                     for t in texts]
        batch, width, length = len(prompts), max(map(len, prompt_ids)), max(map(len, reply_ids))
        prompt_tokens = np.zeros((batch, width), np.int32)
        prompt_mask = np.zeros((batch, width), bool)
        response_tokens = np.zeros((batch, length), np.int32)
        response_mask = np.zeros((batch, length), bool)
        for b, (p, r) in enumerate(zip(prompt_ids, reply_ids)):
            prompt_tokens[b, width - len(p):], prompt_mask[b, width - len(p):] = p, True
            response_tokens[b, :len(r)], response_mask[b, :len(r)] = r, True
        texts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in reply_ids]
        return Rollout(prompt_tokens, prompt_mask, response_tokens,
                       np.zeros((batch, length), np.float32), response_mask, texts)


def environment_suffix_ids(tokenizer, previous_prompt: str, reply_text: str, prompt: str,
                           reply_ids: Sequence[int]) -> np.ndarray:
    """Ids of what ``prompt`` (turn k+1) adds after ``previous_prompt + reply_text`` (turn k).

    The reply's own stop token is not repeated: when ``reply_ids`` ends with the id the suffix
    starts with (the end-of-turn token), that id is dropped from the suffix. [e] int32.
    """
    head = previous_prompt + reply_text
    if not prompt.startswith(head):
        raise ValueError("the chat template does not render earlier turns verbatim (turn k+1's prompt "
                         "does not start with turn k's prompt + reply); multi-turn token sequences "
                         "need a template that keeps messages as they are")
    suffix = tokenizer.encode(prompt[len(head):], add_special_tokens=False)
    if len(reply_ids) and suffix and suffix[0] == int(reply_ids[-1]):
        suffix = suffix[1:]
    return np.asarray(suffix, np.int32)


def _public_request(problem: Problem, code: ExtractedCode, limits: dict) -> ExecutionRequest:
    return judge_request(problem, code.program, tests="public", limits=limits)


def _run_public_tests(client, episodes: Sequence[Episode], config: EpisodeConfig) -> list[dict]:
    """Runs every active episode's newest code on its public tests (+ probes); sets public_result.

    Returns per episode the probed return values {public test index: repr}.
    """
    rows = [i for i, e in enumerate(episodes) if e.turns[-1].extracted is not None and e.problem.public_tests]
    requests = [_public_request(episodes[i].problem, episodes[i].turns[-1].extracted, config.limits) for i in rows]
    for i, result in zip(rows, client.execute_batch(requests) if requests else []):
        episodes[i].turns[-1].public_result = result
    returned: list[dict] = [{} for _ in episodes]
    if not config.probe_return_values:
        return returned
    probes, where = [], []
    for i in rows:
        episode, result = episodes[i], episodes[i].turns[-1].public_result
        if episode.problem.mode != "call" or result.infra_error:
            continue
        failing = [t for t, o in enumerate(result.tests) if o.verdict != "pass"]
        for t in failing[:config.feedback.max_failed_tests]:
            if result.tests[t].verdict == "wrong_answer":
                probes.append(return_value_probe(episode.problem, episode.turns[-1].extracted.program,
                                                 episode.problem.public_tests[t], config.limits))
                where.append((i, t))
    for (i, t), probe in zip(where, client.execute_batch(probes) if probes else []):
        value = probed_value(probe)
        if value is not None:
            returned[i][t] = value
    return returned


def _finished(episode: Episode, turn_index: int, config: EpisodeConfig) -> bool:
    turn = episode.turns[-1]
    if turn.public_result is not None and turn.public_result.infra_error:
        episode.dropped = True
        return True
    return (turn_index + 1 >= config.max_turns or not episode.problem.public_tests
            or episode.turn_passed_public(turn_index))


def _assign_random_feedback(waiting: Sequence[Episode], pool: list[tuple[str, str]],
                            rng: np.random.Generator) -> None:
    """Ablation: each waiting episode's message becomes real feedback of another problem."""
    for episode in waiting:
        turn = episode.turns[-1]
        others = [entry for entry in pool if entry[0] != episode.problem.id]
        if others:
            turn.feedback_from, turn.feedback = others[int(rng.integers(len(others)))]


def _context_ids(episode: Episode, prompt: str, tokenizer) -> np.ndarray:
    """env_1 ⧺ reply_1 ⧺ ... ⧺ env_k for the next turn's `prompt` (earlier replies as sampled)."""
    last = episode.turns[-1]
    env_ids = environment_suffix_ids(tokenizer, last.prompt, last.text, prompt, last.reply_ids)
    return np.concatenate([x for t in episode.turns for x in (t.env_ids, t.reply_ids)] + [env_ids])


def _record_turn(episode: Episode, prompt: str, rollout: Rollout, row: int, params: SamplingParams,
                 stop_ids: frozenset, tokenizer) -> None:
    n = int(rollout.response_mask[row].sum())
    if n == 0:
        raise ValueError(f"the reply source returned an empty reply for {episode.problem.id}")
    reply_ids = rollout.response_tokens[row, :n].astype(np.int32)
    prompt_ids = rollout.prompt_tokens[row][rollout.prompt_mask[row]].astype(np.int32)
    if episode.turns:
        last = episode.turns[-1]
        env_ids = environment_suffix_ids(tokenizer, last.prompt, last.text, prompt, last.reply_ids)
        context = np.concatenate([x for t in episode.turns for x in (t.env_ids, t.reply_ids)] + [env_ids])
        matches = np.array_equal(context, prompt_ids)
    else:
        env_ids, matches = prompt_ids, True
    text = rollout.texts[row]
    episode.turns.append(Turn(
        prompt=prompt, env_ids=env_ids, reply_ids=reply_ids,
        reply_logprobs=rollout.response_logprobs[row, :n].astype(np.float32), text=text,
        truncated=n >= params.max_new_tokens and int(reply_ids[-1]) not in stop_ids,
        extracted=extract_code(episode.problem, text, style="chat"), context_matches=matches))


def run_episodes(source: ReplySource, tokenizer, client, problems: Sequence[Problem], *,
                 samples_per_problem: int, params: SamplingParams, rng,
                 config: EpisodeConfig = EpisodeConfig(),
                 stop_ids: Sequence[int] | None = None, first_problem: int = 0) -> list[Episode]:
    """Runs ``samples_per_problem`` episodes per problem (module docstring), turn-batched.

    Args:
      source: a ReplySource (the Sampler, or TextReplies). tokenizer: the policy's tokenizer.
      client: a SandboxClient. params: sampling parameters of every turn.
      rng: a jax PRNG key; turn k samples with ``jax.random.fold_in(rng, k)``.
      stop_ids: ids that end a reply (default: the tokenizer's eos), to tell truncated replies.
      first_problem: the step-wide index of ``problems[0]`` (a process's share of a multi-process
        step), so group and row ids, hence the sampled tokens, are those of a 1-process step.
    Returns:
      Episodes in problem-major order (``group_id`` = first_problem + the problem's index in
      `problems`, ``row_id`` = group_id * samples_per_problem + the sample's index).
    """

    if samples_per_problem < 1:
        raise ValueError(f"samples_per_problem must be ≥ 1, got {samples_per_problem}")
    missing = [p.id for p in problems if not p.private_tests]
    if missing:
        raise ValueError(f"problems without private tests cannot be graded: {missing[:5]}")
    stops = frozenset(int(s) for s in (stop_ids if stop_ids is not None else [tokenizer.eos_token_id]))
    episodes = [Episode(problem, first_problem + g, (first_problem + g) * samples_per_problem + i)
                for g, problem in enumerate(problems) for i in range(samples_per_problem)]
    active = list(episodes)
    pool: list[tuple[str, str]] = []
    feedback_rng = np.random.default_rng(config.seed)
    keep = config.reuse_kv_cache and getattr(source, "keeps_conversation_cache", False)
    cache, cache_rows = None, {}  # the last turn's kept cache; episode row id -> its row in it
    for k in range(config.max_turns):
        if not active:
            break
        prompts = [build_prompt(e.problem, tokenizer, style="chat", system_prompt=config.system_prompt,
                                turns=[(t.text, t.feedback) for t in e.turns]) for e in active]
        contexts = [_context_ids(e, prompt, tokenizer) for e, prompt in zip(active, prompts)] if k else None
        reuse = {}
        if keep:
            reuse = dict(keep_cache=k + 1 < config.max_turns)
            if cache is not None:
                reuse.update(cache=cache, cache_rows=[cache_rows[e.row_id] for e in active])
        rollout = source.generate(prompts, params, jax.random.fold_in(rng, k), prompt_ids=contexts,
                                  row_ids=[e.row_id for e in active], **reuse)
        if keep:
            cache, cache_rows = rollout.cache, {e.row_id: row for row, e in enumerate(active)}
        for row, (episode, prompt) in enumerate(zip(active, prompts)):
            _record_turn(episode, prompt, rollout, row, params, stops, tokenizer)
        waiting = _give_feedback(active, _run_public_tests(client, active, config), k, config, tokenizer, pool)
        if config.feedback_mode == "random":
            _assign_random_feedback(waiting, pool, feedback_rng)
        active = waiting
    _run_private_tests(client, episodes, config)
    return episodes


def _give_feedback(active: Sequence[Episode], returned: Sequence[dict], turn_index: int, config: EpisodeConfig,
                   tokenizer, pool: list[tuple[str, str]]) -> list[Episode]:
    """Writes the feedback message on the last turn of every episode that goes on (appending it to
    ``pool`` for random feedback); returns those episodes. ``returned``: each one's probed values."""
    waiting = []
    for episode, values in zip(active, returned):
        if _finished(episode, turn_index, config):
            continue
        turn = episode.turns[-1]
        turn.feedback = feedback_message(episode.problem, turn.extracted, turn.public_result,
                                         returned=values, limits=config.limits,
                                         config=config.feedback, tokenizer=tokenizer)
        turn.feedback_from = episode.problem.id
        pool.append((episode.problem.id, turn.feedback))
        waiting.append(episode)
    return waiting


def _run_private_tests(client, episodes: Sequence[Episode], config: EpisodeConfig) -> None:
    """Grades each kept episode's final code on its private tests (one batch)."""
    rows = [e for e in episodes if not e.dropped and e.final_code is not None]
    requests = [judge_request(e.problem, e.final_code.program, tests="private", limits=config.limits)
                for e in rows]
    for episode, result in zip(rows, client.execute_batch(requests) if requests else []):
        episode.private_result = result
        if result.infra_error:
            episode.dropped = True
