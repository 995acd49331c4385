"""Sampler: jitted prefill + `lax.while_loop` decode over a preallocated KV cache; returns a Rollout.

One jitted function per shape bucket (batch and new tokens rounded up to a power of two, prompt length
to 2^k or 3 * 2^(k-1): `sampling_shapes`) runs the whole generation on device: prefill of the
left-padded prompts, then one token per loop step written in place into the cache, exiting early once
every row has produced an EOS token (large caches: a prompt buffer plus decode segments, one loop
each; see `rltf_jax.sampling.prefill_decode`). Rows with identical prompt ids (RL's n samples per problem) share one
prefill: each distinct prompt is prefilled once and its cache rows are copied to the rows that use it.
The step runs the layers unrolled over per-layer weight and cache buffers (models/decode.py), which
on XLA:CPU avoids copying every layer's weights and cache out of the stacked arrays at every token;
training keeps the scanned CausalLM (same block code, same numerics). Tokens are drawn by
`token_sampling.sample_tokens` (exact top-p without sorting the vocabulary at every step).
Stop strings are matched on the host after decoding (a token sequence cannot be matched against a
string on device without a per-step detokenizer): the response mask is cut after the token that
completes the earliest stop string and the text is cut before it (as vLLM and the Codex evaluation
do), so generation past a stop string costs compute but never reaches PPO.
One stop *is* decided on device, because it saves most of a chat model's tokens: with
`SamplingParams.stop_after_code_block` a row stops at the token that closes its first ``` block (a
per-vocabulary table counts the ``` runs in each token; the second one closes the block), so the
explanation an instruct model writes after its code is never generated.

Multi-turn episodes keep each row's KV cache between turns (`generate(keep_cache=True)`, then
`generate(cache=..., cache_rows=...)`): a continued turn prefills only its new tokens
(conversation_cache.py); the token loop is decode_loop.py's, shared by both.

Rollouts may run in a cheaper dtype than training (`Sampler(dtype="bfloat16")`: weights cast once
per `set_weights`, activations and KV cache in bf16, dots accumulating in f32). Decoding is
bandwidth-bound, so halving the weight bytes nearly halves a decode step; PPO recomputes the old
log-probabilities with the training parameters, so the update never sees the sampler's numerics.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from rltf_jax.kernels.decode_attention import use_fused_attention
from rltf_jax.models.decode import TILE, unstack_weights
from rltf_jax.models.sharding import unrolled_weight_shardings
from rltf_jax.parallel.mesh import BATCH_AXES, batch_sharding, state_shardings
from rltf_jax.parallel.multihost import process_local
from rltf_jax.sampling.conversation_cache import (
    ConversationCache,
    continuation_suffixes,
    continue_generation,
    kept_cache,
)
from rltf_jax.sampling.prefill_decode import generate_on_device
from rltf_jax.sampling.shapes import (
    SEGMENT_MIN_SLOTS,
    bucket_size,
    decode_segments,
    prompt_bucket_size,
    sampling_row_ids,
)
from rltf_jax.sampling.token_draw import fence_counts
from rltf_jax.sampling.types import Rollout, SamplingParams

log = logging.getLogger(__name__)


def _eos_ids(config, tokenizer, eos_token_ids: Sequence[int] | None) -> np.ndarray:
    """[E] int32 stop tokens: ``eos_token_ids``, else the config's and the tokenizer's EOS ([-1]: none)."""
    if eos_token_ids is not None:
        eos = set(eos_token_ids)
    else:
        eos = set(config.eos_token_ids)
        if tokenizer.eos_token_id is not None:
            eos.add(int(tokenizer.eos_token_id))
        if not eos:
            raise ValueError("no EOS token: neither the config nor the tokenizer names one")
    return np.asarray(sorted(eos) or [-1], np.int32)  # -1 matches no token


class Sampler:
    """Generates from a LoadedModel; weights can be swapped after each PPO update (`set_weights`)."""

    keeps_conversation_cache = True  # generate(keep_cache=True) / generate(cache=...): conversation_cache

    def __init__(self, loaded, *, mesh=None, dtype: str | None = None, cache_dtype=None,
                 eos_token_ids: Sequence[int] | None = None, min_prompt_bucket: int = 16,
                 min_new_bucket: int = 16, segment_tokens: int = 64, max_segments: int | None = None,
                 segment_min_slots: int = SEGMENT_MIN_SLOTS, max_cache_bytes: int | None = 2 << 30,
                 share_prompt_prefill: bool = True, decode_attention: str = "auto"):
        """loaded: a LoadedModel; mesh: run sharded (params per their logical axes, rows over
        ("data", "fsdp")); dtype: weights and activations of generation, e.g. "bfloat16" (default: the
        model's compute dtype; floating weights are cast on every `set_weights`); cache_dtype: KV-cache
        dtype (default: the generation dtype); eos_token_ids: stop
        tokens (default: the config's and the tokenizer's EOS; () = never stop early, for benchmarks);
        min_*_bucket: smallest prompt / new-token bucket; segment_tokens, max_segments,
        segment_min_slots: caches of at least segment_min_slots slots (batch x (prompt + new)) are
        split into a prompt buffer and up to max_segments decode buffers of >= segment_tokens slots
        (`decode_segments`; max_segments=0: never; None: 2 on the CPU backend, where it was
        measured, else 0); max_cache_bytes: the KV cache one compiled call may hold: a request
        needing more is generated in row chunks of one bucket (None: no bound; an evaluation of
        57 problems x 9 samples in one call needed a 24 GB cache); share_prompt_prefill: rows with
        identical prompt ids (n samples of one problem) share one prefill, whose cache rows are
        copied to each of them (same tokens and log-probabilities as prefilling every row);
        decode_attention: "fused" decodes with the C++ kernel of kernels/decode_attention.cc (CPU
        devices, each attending its own rows; cache dtype = generation dtype, f32 or bf16), "xla"
        with XLA's dots, "auto"
        fused wherever it applies and builds (`fused_attention` says which one runs)."""
        self.max_cache_bytes = max_cache_bytes
        self.share_prompt_prefill = share_prompt_prefill
        self.tokenizer = loaded.tokenizer
        if self.tokenizer is None:
            raise ValueError(f"model {loaded.name!r} has no tokenizer; the sampler needs one")
        self.config = loaded.config if dtype is None else loaded.config.replace(dtype=dtype)
        self.mesh = mesh
        self.cache_dtype = cache_dtype or self.config.compute_dtype
        self._fence_table = None  # built on the first stop_after_code_block request
        self.min_prompt_bucket, self.min_new_bucket = min_prompt_bucket, min_new_bucket
        if max_segments is None:  # the bf16 write that segments avoid is XLA:CPU's (prefill_decode.py)
            max_segments = 2 if jax.default_backend() == "cpu" else 0
        self.segment_tokens, self.max_segments = segment_tokens, max_segments
        self.segment_min_slots = segment_min_slots
        self.fused_attention = use_fused_attention(decode_attention, self.cache_dtype, self.config.compute_dtype)
        state = nnx.state(loaded.model)
        self.eos_ids = _eos_ids(loaded.config, self.tokenizer, eos_token_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else max(int(self.eos_ids[0]), 0))
        self.compiled_buckets: dict[tuple, float] = {}  # bucket key -> compile+first-run seconds
        self._state_shardings = self._weight_shardings = self._batch_sharding = self._rows_sharding = None
        if mesh is not None:
            self._state_shardings = state_shardings(state, mesh)
            self._weight_shardings = unrolled_weight_shardings(state, mesh)
            self._batch_sharding = batch_sharding(mesh)
            self._rows_sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXES))  # [B] arrays
        self.set_weights(state)
        self._jitted = {}

    def set_weights(self, state: nnx.State) -> None:
        """Uses `state` (same graphdef as the loaded model, e.g. after a PPO update) from now on.

        The stacked layer weights are split into per-layer buffers (models/decode.py), a copy the
        size of the layer weights that lets every decode step read weights in place."""
        state = process_local(state)
        if self._state_shardings is not None:
            state = jax.device_put(state, self._state_shardings)
        weights = unstack_weights(state)
        dtype = self.config.compute_dtype
        weights = jax.tree.map(
            lambda w: w.astype(dtype) if jnp.issubdtype(w.dtype, jnp.floating) and w.dtype != dtype else w,
            weights)
        if self._weight_shardings is not None:
            weights = jax.device_put(weights, self._weight_shardings)
        self.weights = weights

    def _batch_multiple(self) -> int:
        if self.mesh is None:
            return 1
        return int(self.mesh.shape["data"] * self.mesh.shape["fsdp"])

    def _tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        bos = self.tokenizer.bos_token
        rows = []
        for text in prompts:
            add_special = not (bos and text.startswith(bos))
            rows.append(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])
        return rows

    def _jit(self, key):
        if key not in self._jitted:
            b, u, p, n, greedy, top_k, use_top_p, keep = key
            segments = 0 if self.fused_attention else decode_segments(
                b, p, n, self.segment_tokens, self.max_segments, self.segment_min_slots)
            fn = functools.partial(generate_on_device, new_bucket=n, greedy=greedy, top_k=top_k, shared_prompts=u < b,
                                   use_top_p=use_top_p, pad_id=self.pad_id, cache_dtype=self.cache_dtype,
                                   segments=segments, fused_attention=self.fused_attention,
                                   mesh=self.mesh if self.fused_attention else None, return_cache=keep)
            kwargs = {}
            if self.mesh is not None:
                rep, rows = NamedSharding(self.mesh, PartitionSpec()), self._rows_sharding
                kwargs = dict(in_shardings=(self._weight_shardings, self._batch_sharding, self._batch_sharding,
                                            rows, rows, rows, rep, rep, rep, rep, rep, rep, rep),
                              out_shardings=(self._batch_sharding, self._batch_sharding,
                                             self._batch_sharding, rep) + ((rows,) if keep else ()))
            self._jitted[key] = jax.jit(functools.partial(fn, self.config), **kwargs)
        return self._jitted[key]

    def generate(self, prompts: list[str], params: SamplingParams, rng: jax.Array, *,
                 row_offset: int = 0, prompt_ids: Sequence[Sequence[int]] | None = None,
                 row_ids: Sequence[int] | None = None, keep_cache: bool = False,
                 cache: ConversationCache | None = None, cache_rows: Sequence[int] | None = None) -> Rollout:
        """Samples one response per prompt (duplicate prompts for several samples per problem).

        row_offset: global index of the first prompt. Prompt i draws its tokens from (rng,
        row_offset + i) alone, so a batch split over processes samples what one process would.
        row_ids: instead of row_offset, each prompt's own distinct global index (multi-turn episodes
        pass their step-wide indices: an episode's draw does not depend on the others running).
        prompt_ids: the prompts' token ids, used as given instead of encoding `prompts` (multi-turn
        episodes pass the joined ids of earlier turns, so the model conditions on exactly them).
        keep_cache: return the rows' KV cache as `Rollout.cache` (None when the request was split
        into row chunks). cache, cache_rows: a kept cache and, per prompt, the row of it whose
        conversation the prompt extends: only the ids past it are prefilled (conversation_cache;
        a request whose cache would not fit max_cache_bytes prefills the whole prompts instead)."""
        if not prompts:
            raise ValueError("generate() needs at least one prompt")
        if prompt_ids is not None and len(prompt_ids) != len(prompts):
            raise ValueError(f"{len(prompt_ids)} prompt_ids for {len(prompts)} prompts")
        row_ids = sampling_row_ids(len(prompts), row_offset, row_ids)
        rows = self._tokenize(prompts) if prompt_ids is None else [[int(t) for t in r] for r in prompt_ids]
        if min(len(r) for r in rows) == 0:
            raise ValueError("empty prompt after tokenization")
        p = prompt_bucket_size(max(len(r) for r in rows), self.min_prompt_bucket)
        n = bucket_size(params.max_new_tokens, self.min_new_bucket)
        if p + n > self.config.max_position_embeddings:
            log.warning("prompt bucket %d + new-token bucket %d exceeds max_position_embeddings %d",
                        p, n, self.config.max_position_embeddings)
        if cache is not None:
            if cache_rows is None:
                raise ValueError("generate(cache=...) needs cache_rows: the cached row each prompt continues")
            suffixes, starts = continuation_suffixes(cache, cache_rows, rows)
            suffix_bucket = prompt_bucket_size(max(map(len, suffixes)), self.min_prompt_bucket)
            if len(rows) <= self.max_rows(cache.slots + suffix_bucket + n):
                return self._continue_rows(rows, p, suffixes, starts, suffix_bucket, n, cache, cache_rows, params,
                                           rng, row_ids, keep_cache)
            log.info("sampler: a %d-slot conversation cache for %d rows exceeds max_cache_bytes; prefilling "
                     "the whole prompts", cache.slots + suffix_bucket + n, len(rows))
        chunk = self.max_rows(p + n)
        if len(rows) <= chunk:
            return self._generate_rows(rows, p, n, params, rng, row_ids, keep=keep_cache)
        parts = [self._generate_rows(rows[i:i + chunk], p, n, params, rng, row_ids[i:i + chunk], batch=chunk)
                 for i in range(0, len(rows), chunk)]
        return Rollout(*(np.concatenate(arrays) for arrays in list(zip(*parts))[:5]),
                       [text for part in parts for text in part.texts])

    def max_rows(self, slots_per_row: int) -> int:
        """Rows one call generates at most with `slots_per_row` cache slots each (prompt bucket +
        new-token bucket) under max_cache_bytes: a power of two (one batch bucket for every
        chunk), a multiple of the mesh's data-parallel size, at least that size."""
        if self.max_cache_bytes is None:
            return 1 << 62
        c = self.config
        if self.fused_attention:  # the fused kernel's cache holds whole tiles of 16 slots
            slots_per_row = -(-slots_per_row // TILE) * TILE
        row_bytes = slots_per_row * c.num_layers * 2 * c.num_kv_heads * c.head_dim * jnp.dtype(
            self.cache_dtype).itemsize
        rows = 1 << max(0, (self.max_cache_bytes // row_bytes).bit_length() - 1)
        return max(rows - rows % self._batch_multiple(), self._batch_multiple())

    def _generate_rows(self, rows: list[list[int]], p: int, n: int, params: SamplingParams, rng,
                       rows_ids: np.ndarray, batch: int = 1, keep: bool = False) -> Rollout:
        """One compiled call: token id rows left-padded to the prompt bucket p, n new-token slots,
        a batch bucket of at least `batch` rows; row r samples with key id `rows_ids[r]`."""
        n_rows = len(rows)
        b = self._rows_bucket(max(n_rows, batch))
        tokens, mask = self._left_pad(rows, b, p)
        active = np.arange(b) < n_rows
        prompt_tokens, prompt_mask, prompt_rows = tokens, mask, np.arange(b, dtype=np.int32)
        if self.share_prompt_prefill:
            first = {}  # prompt ids -> index among the distinct prompts
            prompt_rows[:n_rows] = [first.setdefault(tuple(r), len(first)) for r in rows]
            u = self._rows_bucket(len(first))
            if u < b:
                prompt_rows[n_rows:] = 0
                prompt_tokens, prompt_mask = self._left_pad(list(first), u, p)
        key = (b, prompt_tokens.shape[0], p, n, params.greedy, 0 if params.greedy else params.top_k,
               params.top_p < 1.0 and not params.greedy, keep)
        fn = self._jit(key)
        start = time.perf_counter()
        out = fn(self.weights, prompt_tokens, prompt_mask, prompt_rows, active, self._padded_row_ids(rows_ids, b),
                 *self._sampling_args(params), rng)
        return self._finish(key, start, out, rows, tokens, mask, params, decode_start=p)

    def _continue_rows(self, rows, rows_bucket: int, suffixes, starts, p: int, n: int, cache: ConversationCache,
                       cache_rows, params: SamplingParams, rng, rows_ids: np.ndarray, keep: bool) -> Rollout:
        """One compiled call over a kept cache: `suffixes` (each row's ids past its cached ones)
        left-padded to the bucket p, prefilled at positions `starts` onwards (conversation_cache);
        rows (the whole prompts) are only returned, left-padded to rows_bucket."""
        n_rows, kept_rows = len(rows), cache.buffers.valid.shape[0]
        b = self._rows_bucket(n_rows)
        tokens, mask = self._left_pad(suffixes, b, p)
        pad = lambda x, size: np.concatenate([np.asarray(x, np.int32), np.zeros(size - len(x), np.int32)])
        slot_limit = pad(cache.decode_start + cache.decode_kept, kept_rows)
        use_top_p = params.top_p < 1.0 and not params.greedy
        key = ("continue", b, kept_rows, cache.slots, p, n, params.greedy, 0 if params.greedy else params.top_k,
               use_top_p, keep)
        if key not in self._jitted:
            segments = 0 if self.fused_attention else decode_segments(
                b, cache.slots + p, n, self.segment_tokens, self.max_segments, self.segment_min_slots)
            self._jitted[key] = jax.jit(functools.partial(
                continue_generation, self.config, new_bucket=n, greedy=params.greedy, top_k=key[7],
                use_top_p=use_top_p, pad_id=self.pad_id, cache_dtype=self.cache_dtype, segments=segments,
                return_cache=keep, fused_attention=self.fused_attention, mesh=self.mesh))
        args = [slot_limit, pad(cache_rows, b), tokens, mask, pad(starts, b), np.arange(b) < n_rows,
                self._padded_row_ids(rows_ids, b)]
        if self.mesh is not None:  # the kept buffers and weights carry their shardings; rows go over the mesh
            args = [jax.device_put(a, self._batch_sharding if a.ndim == 2 else self._rows_sharding) for a in args]
        start = time.perf_counter()
        out = self._jitted[key](self.weights, cache.buffers, *args, *self._sampling_args(params), rng)
        full_tokens, full_mask = self._left_pad(rows, b, rows_bucket)
        return self._finish(key, start, out, rows, full_tokens, full_mask, params, decode_start=cache.slots + p)

    def _padded_row_ids(self, rows_ids: np.ndarray, b: int) -> np.ndarray:
        """[b] int32: the rows' sampling ids; padding rows (inactive, discarded) take ids past them."""
        n_rows = len(rows_ids)
        return np.concatenate([rows_ids, rows_ids.max() + 1 + np.arange(b - n_rows)]).astype(np.int32)

    def _sampling_args(self, params: SamplingParams) -> tuple:
        """(eos_ids, fence_table, fence_limit, max_new, temperature, top_p) of a compiled call."""
        if params.stop_after_code_block and self._fence_table is None:
            self._fence_table = fence_counts(self.tokenizer, self.config.vocab_size)
        fence_table = self._fence_table if self._fence_table is not None else \
            np.zeros(self.config.vocab_size, np.int32)
        return (self.eos_ids, fence_table, np.int32(2 if params.stop_after_code_block else 0),
                np.int32(params.max_new_tokens), np.float32(params.temperature), np.float32(params.top_p))

    def _finish(self, key, start: float, out, rows, tokens, mask, params: SamplingParams,
                decode_start: int) -> Rollout:
        """A compiled call's outputs -> Rollout of its len(rows) real rows (stop strings cut on the
        host; the kept cache, if the call returned one, records what each row's cache holds)."""
        n_rows = len(rows)
        out_tokens, out_lp, out_mask, _ = jax.device_get(out[:4])
        if key not in self.compiled_buckets:
            self.compiled_buckets[key] = time.perf_counter() - start
            log.info("sampler: compiled bucket %s (%.1fs incl. first run; %d buckets so far)", key,
                     self.compiled_buckets[key], len(self.compiled_buckets))
        m = params.max_new_tokens
        out_tokens = np.array(out_tokens[:n_rows, :m], np.int32)
        out_lp = np.array(out_lp[:n_rows, :m], np.float32)
        out_mask = np.array(out_mask[:n_rows, :m], bool)
        texts = []
        for i in range(n_rows):
            text, keep = self._cut_at_stop(out_tokens[i][out_mask[i]], params.stop_strings)
            out_mask[i, keep:] = False
            texts.append(text)
        out_tokens = np.where(out_mask, out_tokens, self.pad_id).astype(np.int32)
        out_lp = np.where(out_mask, out_lp, 0.0).astype(np.float32)
        kept = kept_cache(out[4], decode_start, rows, out_tokens, out_mask) if len(out) > 4 else None
        return Rollout(tokens[:n_rows], mask[:n_rows], out_tokens, out_lp, out_mask, texts, kept)

    def _rows_bucket(self, n: int) -> int:
        """Batch bucket for n rows: a power of two, a multiple of the mesh's data-parallel size."""
        b = bucket_size(n, 1)
        return b + -b % self._batch_multiple()

    def _left_pad(self, rows: Sequence[Sequence[int]], b: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """Token id rows -> (tokens [b, p] int32 left-padded with pad_id, mask [b, p] bool)."""
        tokens = np.full((b, p), self.pad_id, np.int32)
        mask = np.zeros((b, p), bool)
        for i, r in enumerate(rows):
            tokens[i, p - len(r):] = r
            mask[i, p - len(r):] = True
        return tokens, mask

    def _decode(self, tokens) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def _cut_at_stop(self, tokens: np.ndarray, stop_strings: Sequence[str]) -> tuple[str, int]:
        """(text cut before the earliest stop string, number of tokens to keep: through the token
        that completes it). Without a stop string: (full text, len(tokens))."""
        text = self._decode(tokens)
        hits = [(text.find(s), s) for s in stop_strings if s and s in text]
        if not hits:
            return text, len(tokens)
        start, stop = min(hits)
        lo, hi = 1, len(tokens)  # smallest k whose decoded prefix already contains the stop string
        while lo < hi:
            mid = (lo + hi) // 2
            if stop in self._decode(tokens[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return text[:start], lo
