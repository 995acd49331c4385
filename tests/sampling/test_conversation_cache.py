"""Conversation caches: a turn continued over a kept KV cache samples under the same distribution as
a full prefill of the whole conversation (log-probabilities of a teacher-forced forward), draws the
same tokens with the same keys, and refuses a prompt that does not extend what it cached."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.models import load_model
from rltf_jax.sampling import Sampler, SamplingParams


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


def _ids(tiny, text):
    return tiny.tokenizer(text, add_special_tokens=False)["input_ids"]


def _teacher_forced(tiny, prompt_ids, reply_ids, temperature):
    """log p of each reply token given the prompt ids, from one training-path forward."""
    tokens = np.asarray(list(prompt_ids) + list(reply_ids))
    t = len(tokens)
    logits, _, _ = tiny.model(jnp.asarray(tokens)[None], jnp.arange(t)[None], jnp.ones((1, t), bool))
    logp = np.asarray(jax.nn.log_softmax(np.asarray(logits[0]) / temperature, axis=-1))
    return logp[np.arange(len(prompt_ids) - 1, t - 1), tokens[len(prompt_ids):]]


def _reply(rollout, row):
    return rollout.response_tokens[row][rollout.response_mask[row]].tolist()


@pytest.mark.parametrize("sampler_kwargs", [
    dict(decode_attention="xla"),
    dict(decode_attention="auto"),  # the fused kernel on the CPU for turn 1
    dict(decode_attention="xla", segment_tokens=8, max_segments=2, segment_min_slots=0),
], ids=["xla", "auto", "segments"])
def test_continued_turns_sample_under_the_full_conversation(tiny, sampler_kwargs):
    sampler = Sampler(tiny, **sampler_kwargs)
    params = SamplingParams(max_new_tokens=10, temperature=0.8, stop_strings=("\n\n",))
    prompts = ["def add(a, b):", "def add(a, b):", "Write a haiku about unit tests"]
    first = sampler.generate(prompts, params, jax.random.key(0), keep_cache=True, row_ids=[5, 6, 7])
    assert first.cache is not None and len(first.cache.fed_ids) == 3
    conversations = [first.prompt_tokens[r][first.prompt_mask[r]].tolist() + _reply(first, r) for r in range(3)]
    feedback = [_ids(tiny, " Your code failed: try again."), _ids(tiny, " ok?")]
    # turn 2: rows 2 and 0 continue (reordered, row 1 stopped), each with its own feedback
    ids2 = [conversations[2] + feedback[0], conversations[0] + feedback[1]]
    second = sampler.generate(["", ""], params, jax.random.key(1), prompt_ids=ids2, row_ids=[7, 5],
                              keep_cache=True, cache=first.cache, cache_rows=[2, 0])
    third_ids = [ids2[1] + _reply(second, 1) + feedback[0]]
    third = sampler.generate([""], params, jax.random.key(2), prompt_ids=third_ids, row_ids=[5],
                             cache=second.cache, cache_rows=[1])
    assert third.cache is None  # not asked for
    for rollout, ids in ((second, ids2), (third, third_ids)):
        for row, prompt in enumerate(ids):
            assert rollout.prompt_tokens[row][rollout.prompt_mask[row]].tolist() == prompt
            got = rollout.response_logprobs[row][rollout.response_mask[row]]
            np.testing.assert_allclose(got, _teacher_forced(tiny, prompt, _reply(rollout, row), 0.8), atol=2e-4)
    # the same keys over a full prefill of the same ids draw the same tokens
    full = sampler.generate(["", ""], params, jax.random.key(1), prompt_ids=ids2, row_ids=[7, 5])
    assert [_reply(full, r) for r in range(2)] == [_reply(second, r) for r in range(2)]
    assert full.texts == second.texts


def test_a_cut_reply_is_cached_only_up_to_its_cut(tiny):
    """Tokens generated past a stop string are in the cache's slots but not in the conversation."""
    sampler = Sampler(tiny, decode_attention="xla")
    params = SamplingParams(max_new_tokens=24, temperature=1.0)
    first = sampler.generate(["def f(x):"], params, jax.random.key(3), keep_cache=True)
    reply = _reply(first, 0)
    assert len(reply) > 4
    stop = tiny.tokenizer.decode(reply[2:4])
    cut = sampler.generate(["def f(x):"], SamplingParams(max_new_tokens=24, temperature=1.0, stop_strings=(stop,)),
                           jax.random.key(3), keep_cache=True)
    kept = _reply(cut, 0)
    assert len(kept) < len(reply) and cut.cache.decode_kept[0] == len(kept) - 1
    prompt = cut.prompt_tokens[0][cut.prompt_mask[0]].tolist() + kept + _ids(tiny, " again")
    more = sampler.generate([""], params, jax.random.key(4), prompt_ids=[prompt], cache=cut.cache, cache_rows=[0])
    np.testing.assert_allclose(more.response_logprobs[0][more.response_mask[0]],
                               _teacher_forced(tiny, prompt, _reply(more, 0), 1.0), atol=2e-4)


def test_a_prompt_that_does_not_extend_the_cache_is_refused(tiny):
    sampler = Sampler(tiny, decode_attention="xla")
    params = SamplingParams(max_new_tokens=6, greedy=True)
    first = sampler.generate(["def add(a, b):"], params, jax.random.key(0), keep_cache=True)
    cached = first.cache.fed_ids[0].tolist()
    with pytest.raises(ValueError, match="does not extend the conversation cached for row 0"):
        sampler.generate([""], params, jax.random.key(1), prompt_ids=[[cached[0] + 1] + cached[1:] + [7]],
                         cache=first.cache, cache_rows=[0])
    with pytest.raises(ValueError, match="does not extend"):  # nothing new to prefill
        sampler.generate([""], params, jax.random.key(1), prompt_ids=[cached], cache=first.cache, cache_rows=[0])
    with pytest.raises(ValueError, match="cache holds rows 0..0"):
        sampler.generate([""], params, jax.random.key(1), prompt_ids=[cached + [7]], cache=first.cache,
                         cache_rows=[1])
    with pytest.raises(ValueError, match="needs cache_rows"):
        sampler.generate([""], params, jax.random.key(1), prompt_ids=[cached + [7]], cache=first.cache)


def test_a_cache_too_large_for_the_budget_falls_back_to_a_full_prefill(tiny):
    params = SamplingParams(max_new_tokens=8, temperature=1.0)
    roomy = Sampler(tiny, decode_attention="xla")
    first = roomy.generate(["def add(a, b):"] * 2, params, jax.random.key(0), keep_cache=True)
    ids = [first.prompt_tokens[r][first.prompt_mask[r]].tolist() + _reply(first, r) + [7, 8] for r in range(2)]
    cached = roomy.generate(["", ""], params, jax.random.key(1), prompt_ids=ids, cache=first.cache,
                            cache_rows=[0, 1])
    tight = Sampler(tiny, decode_attention="xla", max_cache_bytes=1)  # one row per call
    full = tight.generate(["", ""], params, jax.random.key(1), prompt_ids=ids, cache=first.cache, cache_rows=[0, 1])
    assert [_reply(full, r) for r in range(2)] == [_reply(cached, r) for r in range(2)]


class CallRecorder:
    """The real Sampler (cache support included); records each generate call's keyword arguments."""

    keeps_conversation_cache = True

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, []

    def generate(self, prompts, params, rng, **kwargs):
        self.calls.append(sorted(kwargs))
        return self.sampler.generate(prompts, params, rng, **kwargs)


def test_episodes_over_kept_caches_are_the_episodes_of_full_prefills(tiny, client):
    """A real tiny policy on real problems for three turns: with the cache kept between turns every
    reply (ids and log-probabilities) is the one full prefills of the conversation give."""
    from rltf_jax.data import load_problems
    from rltf_jax.rollout.episodes import EpisodeConfig, run_episodes

    problems = load_problems("starter:train")[:2]
    runs = {}
    for reuse in (True, False):
        source = CallRecorder(Sampler(tiny))
        runs[reuse] = run_episodes(source, tiny.tokenizer, client, problems, samples_per_problem=2,
                                   params=SamplingParams(max_new_tokens=24, temperature=1.0), rng=jax.random.key(1),
                                   config=EpisodeConfig(max_turns=3, reuse_kv_cache=reuse))
        with_cache = ["cache" in call for call in source.calls]
        assert with_cache == ([False, True, True] if reuse else [False, False, False])
    assert [len(e.turns) for e in runs[True]] == [3, 3, 3, 3]  # a tiny random policy never passes
    for kept, full in zip(runs[True], runs[False]):
        for a, b in zip(kept.turns, full.turns):
            np.testing.assert_array_equal(a.env_ids, b.env_ids)
            np.testing.assert_array_equal(a.reply_ids, b.reply_ids)
            np.testing.assert_allclose(a.reply_logprobs, b.reply_logprobs, atol=2e-4)
            assert a.context_matches
