"""Sampler: rollout layout, logprobs vs a teacher-forced forward, EOS / stop strings, buckets, filters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from draw_margins import assert_same_draws, first_rounding_calls
from f64_reference import Float64Reference
from rltf_jax.models import load_model
from rltf_jax.sampling import Rollout, Sampler, SamplingParams
from rltf_jax.sampling.shapes import bucket_size, decode_segments, prompt_bucket_size
from rltf_jax.sampling.token_draw import sample_tokens

PROMPTS = ["def add(a, b):", "Write a haiku about unit tests and the joy they bring"]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def sampler(tiny):
    return Sampler(tiny)


@pytest.fixture(scope="module")
def f64(tiny, tmp_path_factory):
    """transformers in float64 on tiny-llama's weights: the sampler's log-probabilities and the
    training forward's are each bounded against it (f64_reference.py), not against each other (they
    are different float32 programs, whose difference depends on the CPU: docs/testing.md)."""
    return Float64Reference(tiny, str(tmp_path_factory.mktemp("tiny_llama_hf")))


def _assert_float64(f64, rollout: Rollout, temperature: float, rows=None) -> None:
    """Every generated log-probability of `rows` (all by default) within float32 rounding of float64."""
    for row in range(len(rollout.response_tokens)) if rows is None else rows:
        m = rollout.response_mask[row]
        f64.assert_logprobs(rollout.response_logprobs[row][m], rollout.prompt_tokens[row][rollout.prompt_mask[row]],
                            rollout.response_tokens[row][m], temperature)


def _assert_same_logprobs(f64, a: Rollout, b: Rollout, temperature: float) -> None:
    """Two rollouts of the same tokens (already checked equal): padding equal, every real log-probability
    of each within float32 rounding of float64 (was: |a - b| <= 1e-5 between the two programs)."""
    np.testing.assert_array_equal(a.response_logprobs[~a.response_mask], b.response_logprobs[~b.response_mask])
    _assert_float64(f64, a, temperature)
    _assert_float64(f64, b, temperature)


def _assert_same_tokens(f64, a: Rollout, b: Rollout, greedy: bool) -> None:
    """Greedy: no step is a rounding call (each float64 top-1 margin exceeds the two logits' bounds,
    draw_margins.py), a's tokens are the float64 argmax and b's equal them. Where the calls are
    depends only on the float64 reference (the tokens before a call are its argmax): the same on any
    CPU. Sampled: equal (still open: on tiny-llama's flat distributions the float64 bound certifies
    no draw, docs/testing.md)."""
    if greedy:
        calls = first_rounding_calls(f64, a, None, greedy=True, stats=[])
        assert all(upto == int(a.response_mask[row].sum()) for row, upto in calls.items()), calls
        assert_same_draws(calls, a, b)
    else:
        np.testing.assert_array_equal(a.response_tokens, b.response_tokens)
        np.testing.assert_array_equal(a.response_mask, b.response_mask)


def _assert_teacher_forced(f64, tiny, rollout: Rollout, row: int, temperature: float = 1.0) -> None:
    """The training path's log-probabilities of the row's reply, within float32 rounding of float64."""
    m = rollout.response_mask[row]
    f64.assert_logprobs(_teacher_forced_logprobs(tiny, rollout, row, temperature),
                        rollout.prompt_tokens[row][rollout.prompt_mask[row]], rollout.response_tokens[row][m],
                        temperature)


def _teacher_forced_logprobs(loaded, rollout: Rollout, row: int, temperature: float = 1.0) -> np.ndarray:
    """log p(response token) from one training-path forward over prompt ⧺ response."""
    pm, rm = rollout.prompt_mask[row], rollout.response_mask[row]
    tokens = np.concatenate([rollout.prompt_tokens[row][pm], rollout.response_tokens[row][rm]])
    t = len(tokens)
    logits, _, _ = loaded.model(jnp.asarray(tokens)[None], jnp.arange(t)[None], jnp.ones((1, t), bool))
    logp = jax.nn.log_softmax(np.asarray(logits[0]) / temperature, axis=-1)
    n_prompt = int(pm.sum())
    idx = np.arange(n_prompt - 1, t - 1)
    return np.asarray(logp)[idx, tokens[n_prompt:]]


def test_rollout_layout_and_greedy_logprobs_match_a_full_forward(tiny, sampler, f64):
    r = sampler.generate(PROMPTS, SamplingParams(max_new_tokens=12, greedy=True), jax.random.key(0))
    assert r.prompt_tokens.dtype == np.int32 and r.prompt_mask.dtype == bool
    assert r.response_tokens.shape == r.response_logprobs.shape == r.response_mask.shape == (2, 12)
    assert r.response_logprobs.dtype == np.float32 and len(r.texts) == 2
    lengths = r.prompt_mask.sum(1)
    assert lengths[0] < lengths[1] and not r.prompt_mask[0, 0] and r.prompt_mask[:, -1].all()  # left-padded
    for row in range(2):
        m = r.response_mask[row]
        assert m[0] and (np.diff(m.astype(int)) <= 0).all()  # a prefix
        _assert_teacher_forced(f64, tiny, r, row)  # was: sampler vs training forward, atol 1e-4
        _assert_float64(f64, r, 1.0, rows=[row])
        assert r.texts[row] == tiny.tokenizer.decode(r.response_tokens[row][m], skip_special_tokens=True)


def test_temperature_logprobs_are_under_the_tempered_distribution(tiny, sampler, f64):
    r = sampler.generate(PROMPTS[:1], SamplingParams(max_new_tokens=8, temperature=0.7), jax.random.key(3))
    _assert_teacher_forced(f64, tiny, r, 0, temperature=0.7)
    _assert_float64(f64, r, 0.7)


def test_same_key_same_sample_different_key_differs(sampler):
    params = SamplingParams(max_new_tokens=16, temperature=1.0)
    a = sampler.generate(PROMPTS, params, jax.random.key(1))
    b = sampler.generate(PROMPTS, params, jax.random.key(1))
    c = sampler.generate(PROMPTS, params, jax.random.key(2))
    np.testing.assert_array_equal(a.response_tokens, b.response_tokens)
    assert not np.array_equal(a.response_tokens, c.response_tokens)


def test_a_row_id_draws_the_same_tokens_in_any_batch(sampler):
    # multi-turn episodes pass their own row ids: a row's draw must not depend on its neighbours
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0] + " # again"]
    params = SamplingParams(max_new_tokens=12, temperature=1.0)
    whole = sampler.generate(prompts, params, jax.random.key(4), row_ids=[7, 2, 11])
    alone = sampler.generate([prompts[2]], params, jax.random.key(4), row_ids=[11])
    np.testing.assert_array_equal(whole.response_tokens[2], alone.response_tokens[0])
    by_offset = sampler.generate(prompts[1:], params, jax.random.key(4), row_offset=2)  # rows 2, 3
    np.testing.assert_array_equal(whole.response_tokens[1], by_offset.response_tokens[0])
    other_id = sampler.generate([prompts[0]], params, jax.random.key(4), row_ids=[8])
    assert not np.array_equal(whole.response_tokens[0], other_id.response_tokens[0])
    for bad in ([1, 1, 2], [0, 1], [-1, 0, 1]):
        with pytest.raises(ValueError, match="row_ids must be 3 distinct"):
            sampler.generate(prompts, params, jax.random.key(4), row_ids=bad)


def test_top_k_1_is_greedy(sampler):
    greedy = sampler.generate(PROMPTS, SamplingParams(max_new_tokens=10, greedy=True), jax.random.key(0))
    top1 = sampler.generate(PROMPTS, SamplingParams(max_new_tokens=10, top_k=1), jax.random.key(5))
    np.testing.assert_array_equal(greedy.response_tokens, top1.response_tokens)
    np.testing.assert_allclose(top1.response_logprobs[top1.response_mask], 0.0, atol=1e-6)  # renormalised


def test_eos_stops_a_row_and_the_mask_includes_it(tiny):
    free = Sampler(tiny).generate(PROMPTS, SamplingParams(max_new_tokens=10, greedy=True), jax.random.key(0))
    eos = int(free.response_tokens[0, 3])
    first = int(np.argmax(free.response_tokens[0] == eos))  # may occur before index 3
    r = Sampler(tiny, eos_token_ids=(eos,)).generate(PROMPTS, SamplingParams(max_new_tokens=10, greedy=True),
                                                    jax.random.key(0))
    assert r.response_mask[0].sum() == first + 1 and r.response_tokens[0, first] == eos
    np.testing.assert_array_equal(r.response_tokens[0, : first + 1], free.response_tokens[0, : first + 1])
    assert (r.response_logprobs[0, first + 1:] == 0).all()


def test_stop_string_cuts_text_and_mask(tiny, sampler):
    params = SamplingParams(max_new_tokens=24, greedy=True)
    free = sampler.generate(PROMPTS[:1], params, jax.random.key(0))
    text = free.texts[0]
    assert len(text) > 12
    stop = text[6:10]
    start = text.find(stop)
    cut = sampler.generate(PROMPTS[:1], SamplingParams(24, greedy=True, stop_strings=(stop,)), jax.random.key(0))
    assert cut.texts[0] == text[:start]
    kept = int(cut.response_mask[0].sum())
    decode = lambda n: tiny.tokenizer.decode(free.response_tokens[0][:n], skip_special_tokens=True)
    assert stop in decode(kept) and stop not in decode(kept - 1)
    assert (cut.response_tokens[0, kept:] == sampler.pad_id).all()


def test_one_compile_per_bucket(tiny):
    s = Sampler(tiny)
    params = SamplingParams(max_new_tokens=5, greedy=True)
    s.generate(["a b c"], params, jax.random.key(0))
    s.generate(["a b c d e f g"], SamplingParams(max_new_tokens=9, greedy=True), jax.random.key(0))
    assert len(s.compiled_buckets) == 1  # prompt 16, new 16, batch 1
    s.generate(["x"] * 3, params, jax.random.key(0))
    assert len(s.compiled_buckets) == 2  # batch bucket 4
    assert [fn._cache_size() for fn in s._jitted.values()] == [1, 1]


def test_set_weights_changes_the_policy(tiny):
    s = Sampler(tiny)
    params = SamplingParams(max_new_tokens=6, greedy=True)
    before = s.generate(PROMPTS, params, jax.random.key(0))
    state = jax.tree.map(lambda x: x, nnx.state(tiny.model))
    state["final_norm"][...] = -state["final_norm"][...]  # negated logits: a different policy
    s.set_weights(state)
    after = s.generate(PROMPTS, params, jax.random.key(0))
    assert not np.array_equal(before.response_tokens, after.response_tokens)
    assert len(s.compiled_buckets) == 1  # same graphdef and shapes: no recompile
    assert [fn._cache_size() for fn in s._jitted.values()] == [1]  # jax traced and compiled it once


def test_top_p_samples_only_the_nucleus_and_renormalises():
    probs = np.array([0.5, 0.3, 0.15, 0.05], np.float32)
    logits = jnp.log(jnp.asarray(probs))[None].repeat(512, 0)
    keys = jax.random.split(jax.random.key(0), 512)
    toks, lps = jax.vmap(lambda k, l: sample_tokens(l[None], k, 1.0, 0.7, greedy=False, top_k=0,
                                                    use_top_p=True))(keys, logits)
    toks, lps = np.asarray(toks)[:, 0], np.asarray(lps)[:, 0]
    assert set(toks) == {0, 1}  # 0.5 + 0.3 >= 0.7: the nucleus is the two most likely tokens
    np.testing.assert_allclose(lps[toks == 0], np.log(0.5 / 0.8), atol=1e-5)
    np.testing.assert_allclose(lps[toks == 1], np.log(0.3 / 0.8), atol=1e-5)
    assert 0.5 < (toks == 0).mean() < 0.75


def test_bucket_sizes_and_bad_params():
    assert [bucket_size(n) for n in (1, 16, 17, 100)] == [16, 16, 32, 128]
    assert bucket_size(3, 1) == 4
    assert [prompt_bucket_size(n) for n in (1, 17, 25, 45, 49, 100, 945)] == [16, 24, 32, 48, 64, 128, 1024]
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(4, temperature=0.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(4, top_p=0.0)


def test_bfloat16_sampler_casts_weights_and_stays_close_to_float32(tiny):
    bf16 = Sampler(tiny, dtype="bfloat16")
    assert all(w.dtype == jnp.bfloat16 for w in jax.tree.leaves(bf16.weights))
    assert bf16.cache_dtype == jnp.bfloat16
    r = bf16.generate(PROMPTS, SamplingParams(max_new_tokens=12, temperature=1.0), jax.random.key(3))
    for row in range(len(PROMPTS)):
        reference = _teacher_forced_logprobs(tiny, r, row)  # float32 training path, same tokens
        got = r.response_logprobs[row][r.response_mask[row]]
        np.testing.assert_allclose(got, reference, atol=0.05)
        assert not np.array_equal(got, reference)  # really computed in bf16


@pytest.mark.slow
def test_stop_after_code_block_ends_the_reply_at_the_closing_fence():
    """Real SmolLM2 (its chat replies explain the code after the block): the row stops at the token that
    closes the first ``` block; the tokens are a prefix of the unstopped reply."""
    loaded = load_model("smollm2-135m-instruct")
    sampler = Sampler(loaded)
    messages = [{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}]
    prompt = loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    free = sampler.generate([prompt], SamplingParams(160, greedy=True), jax.random.key(0))
    stopped = sampler.generate([prompt], SamplingParams(160, greedy=True, stop_after_code_block=True),
                               jax.random.key(0))
    text = stopped.texts[0]
    assert text.count("```") == 2 and text.rstrip().endswith("```")
    assert free.texts[0].startswith(text) and len(free.texts[0]) > len(text)
    kept = int(stopped.response_mask[0].sum())
    assert kept < int(free.response_mask[0].sum())
    np.testing.assert_array_equal(stopped.response_tokens[0, :kept], free.response_tokens[0, :kept])
    assert (stopped.response_tokens[0, kept:] == sampler.pad_id).all()


@pytest.mark.parametrize("greedy", [True, False])
def test_segmented_decode_cache_samples_what_one_cache_buffer_does(tiny, f64, greedy):
    """A separate prompt buffer and 4 decode segments (one while_loop each) give the same tokens and
    log-probabilities as one buffer for prompt and decode slots, also when rows stop on EOS mid-way."""
    one = Sampler(tiny, max_segments=0, decode_attention="xla")  # segments are the XLA path's
    split = Sampler(tiny, segment_tokens=8, max_segments=4, segment_min_slots=0, decode_attention="xla")
    params = SamplingParams(max_new_tokens=29, greedy=greedy, temperature=0.9)
    a = one.generate(PROMPTS, params, jax.random.key(5))
    b = split.generate(PROMPTS, params, jax.random.key(5))
    assert decode_segments(2, 16, 32, 8, 4, 0) == 4 and decode_segments(2, 16, 32, 8, 4) == 0
    _assert_same_tokens(f64, a, b, greedy)
    _assert_same_logprobs(f64, a, b, 1.0 if greedy else 0.9)
    _assert_teacher_forced(f64, tiny, b, 1, temperature=1.0 if greedy else 0.9)
    # a row that stops early (its EOS is the token it drew third) ends in the first segment
    eos = int(a.response_tokens[0, 2])
    one_eos, split_eos = (Sampler(tiny, eos_token_ids=[eos], decode_attention="xla", **kw) for kw in
                          ({"max_segments": 0}, {"segment_tokens": 8, "max_segments": 4, "segment_min_slots": 0}))
    c, d = (s.generate(PROMPTS, params, jax.random.key(5)) for s in (one_eos, split_eos))
    np.testing.assert_array_equal(c.response_mask, d.response_mask)
    np.testing.assert_array_equal(c.response_tokens, d.response_tokens)
    assert d.response_mask[0].sum() <= 3


def test_requests_past_the_cache_bound_run_in_row_chunks_and_sample_the_same(tiny, f64):
    """max_cache_bytes splits a big request into chunks of one batch bucket; every row keeps its
    own key (row_offset), so the result is the one-call result (an evaluation of 513 rows once
    needed a 24 GB cache)."""
    prompts = [PROMPTS[i % 2] + " " * (i % 3) for i in range(7)]
    params = SamplingParams(max_new_tokens=6, temperature=0.8)
    whole = Sampler(tiny).generate(prompts, params, jax.random.key(3))
    c = tiny.config
    row_bytes = (16 + 16) * c.num_layers * 2 * c.num_kv_heads * c.head_dim * 4  # f32 cache
    bounded = Sampler(tiny, max_cache_bytes=3 * row_bytes)
    assert bounded.max_rows(32) == 2
    parts = bounded.generate(prompts, params, jax.random.key(3))
    assert {key[0] for key in bounded.compiled_buckets} == {2}  # chunks of 2, 2, 2 and 1 -> bucket 2
    for name in ("prompt_tokens", "prompt_mask", "response_tokens", "response_mask"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(parts, name), err_msg=name)
    _assert_same_logprobs(f64, whole, parts, 0.8)
    assert whole.texts == parts.texts


@pytest.mark.parametrize("segmented", [False, True])
def test_rows_sharing_a_prompt_share_one_prefill_and_sample_what_separate_prefills_do(tiny, f64, segmented):
    """n samples of one problem: identical prompt ids are prefilled once and their cache rows copied
    to every row; tokens, masks and log-probabilities are those of prefilling each row itself, and
    rows of one prompt still draw their own tokens."""
    kw = ({"segment_tokens": 8, "max_segments": 2, "segment_min_slots": 0, "decode_attention": "xla"}
          if segmented else {})
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0], PROMPTS[1]]
    params = SamplingParams(max_new_tokens=12, temperature=0.9)
    shared, apart = Sampler(tiny, **kw), Sampler(tiny, share_prompt_prefill=False, **kw)
    a = apart.generate(prompts, params, jax.random.key(7))
    b = shared.generate(prompts, params, jax.random.key(7))
    assert [key[:2] for key in apart.compiled_buckets] == [(8, 8)]
    assert [key[:2] for key in shared.compiled_buckets] == [(8, 2)]  # 8 rows, 2 prompts prefilled
    for name in ("prompt_tokens", "prompt_mask", "response_tokens", "response_mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    _assert_same_logprobs(f64, a, b, 0.9)
    assert a.texts == b.texts
    assert len({tuple(b.response_tokens[i]) for i in (0, 2, 3)}) > 1
    _assert_teacher_forced(f64, tiny, b, 3, temperature=0.9)


@pytest.mark.parametrize("greedy", [True, False])
def test_fused_cpu_decode_attention_samples_what_xla_attention_does(tiny, f64, greedy):
    """The default CPU sampler decodes with the fused kernel (kernels/decode_attention.cc): in float32
    its tokens, masks and log-probabilities are XLA attention's, also for rows that stop on EOS;
    log-probabilities match a teacher-forced forward of the training path."""
    fused, xla = Sampler(tiny), Sampler(tiny, decode_attention="xla")
    assert fused.fused_attention and not xla.fused_attention
    params = SamplingParams(max_new_tokens=40, greedy=greedy, temperature=0.9)
    prompts = PROMPTS + [PROMPTS[0] + " # the sum", "x" * 60]  # prompt lengths across a 16-slot tile
    a = xla.generate(prompts, params, jax.random.key(11))
    b = fused.generate(prompts, params, jax.random.key(11))
    for name in ("prompt_tokens", "prompt_mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    _assert_same_tokens(f64, a, b, greedy)
    _assert_same_logprobs(f64, a, b, 1.0 if greedy else 0.9)
    _assert_teacher_forced(f64, tiny, b, 3, temperature=1.0 if greedy else 0.9)
    eos = int(a.response_tokens[1, 4])
    c, d = (Sampler(tiny, eos_token_ids=[eos], decode_attention=mode).generate(prompts, params, jax.random.key(11))
            for mode in ("xla", "fused"))
    np.testing.assert_array_equal(c.response_mask, d.response_mask)
    np.testing.assert_array_equal(c.response_tokens, d.response_tokens)
    assert d.response_mask[1].sum() <= 5


def test_decode_attention_choice_is_checked(tiny):
    with pytest.raises(ValueError, match="'auto', 'fused' or 'xla', not 'pallas'"):
        Sampler(tiny, decode_attention="pallas")
    with pytest.raises(ValueError, match="cache dtype float32 and generation dtype bfloat16"):
        Sampler(tiny, dtype="bfloat16", cache_dtype=jnp.float32, decode_attention="fused")
    assert not Sampler(tiny, dtype="bfloat16", cache_dtype=jnp.float32).fused_attention  # auto: XLA's
