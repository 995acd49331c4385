"""A tiny llama GGUF file with every quantization type the loader claims (tests only)."""

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import quantize

D, F, V, L, H, KV = 256, 512, 320, 2, 4, 2  # K-quants need rows that are multiples of 256
BLOCK_BYTES = {Q.Q4_K: 144, Q.Q6_K: 210}


def _kquant_bytes(rows: int, cols: int, qtype, rng) -> np.ndarray:
    """Random but valid K-quant blocks (gguf-py cannot quantize K-quants): finite f16 scales."""
    nblocks = cols // 256
    raw = rng.integers(0, 256, (rows, nblocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    scale = np.frombuffer(np.float16(0.004).tobytes(), np.uint8)
    if qtype == Q.Q4_K:  # d, dmin at the block start
        raw[:, :, 0:2] = scale
        raw[:, :, 2:4] = scale
    else:  # Q6_K: d at the block end
        raw[:, :, 208:210] = scale
    return raw.reshape(rows, nblocks * BLOCK_BYTES[qtype])


def write_tiny_gguf(path: str) -> None:
    """A 2-layer llama GGUF (D=256, vocab 320) whose tensors use every quant type we claim to load."""
    rng = np.random.default_rng(0)
    w = GGUFWriter(path, "llama")
    w.add_block_count(L)
    w.add_context_length(256)
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    w.add_rope_dimension_count(D // H)

    def dense(name, out_dim, in_dim, qtype):
        x = (rng.standard_normal((out_dim, in_dim)) * 0.05).astype(np.float32)
        if qtype in BLOCK_BYTES:
            w.add_tensor(name, _kquant_bytes(out_dim, in_dim, qtype, rng), raw_dtype=qtype)
        elif qtype == Q.F32:
            w.add_tensor(name, x)
        elif qtype == Q.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, quantize(x, qtype), raw_dtype=qtype)

    dense("token_embd.weight", V, D, Q.Q8_0)
    dense("output.weight", V, D, Q.F16)
    w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(D)).astype(np.float32))
    types = [(Q.Q4_K, Q.Q6_K, Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.F32, Q.F16),
             (Q.Q6_K, Q.Q4_K, Q.Q8_0, Q.F16, Q.Q4_0, Q.Q4_1, Q.F32)]
    for layer in range(L):
        tq, tk, tv, to, tg, tu, td = types[layer]
        dense(f"blk.{layer}.attn_q.weight", D, D, tq)
        dense(f"blk.{layer}.attn_k.weight", D * KV // H, D, tk)
        dense(f"blk.{layer}.attn_v.weight", D * KV // H, D, tv)
        dense(f"blk.{layer}.attn_output.weight", D, D, to)
        dense(f"blk.{layer}.ffn_gate.weight", F, D, tg)
        dense(f"blk.{layer}.ffn_up.weight", F, D, tu)
        dense(f"blk.{layer}.ffn_down.weight", D, F, Q.Q4_K if layer == 0 else Q.Q6_K)
        for norm in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{layer}.{norm}.weight", (1 + 0.1 * rng.standard_normal(D)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
