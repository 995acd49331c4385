// One decode step of grouped-query attention over a KV cache, as an XLA FFI custom call for the CPU.
//
// XLA:CPU runs decode attention as two batched dots per cache buffer, i.e. B x K tiny [G, hd] x
// [hd, S] products per layer, each paying a library call, and it rewrites a whole bfloat16 cache
// buffer on every in-place token write. This kernel does one (row, kv-head) pair per work item: it
// writes the new key and value at slot `index` in place, then reads each cached key and value row
// once (slots 0..index only, never the unfilled tail) for all G query heads of the group.
//
// Shapes (B rows, H query heads, K kv heads, G = H / K, S cache slots, D head dim):
//   q        f32  [B, H, D]     already scaled by 1/sqrt(D) (and rounded to the compute dtype)
//   k_new    T    [B, K, D]     this step's key (post-RoPE), T = the cache dtype (f32 or bf16)
//   v_new    T    [B, K, D]
//   cache_k  T    [B, K, S/16, D, 16]  keys in tiles of 16 slots; aliased to result 1 (in place)
//   cache_v  T    [B, K, S, D]        aliased to result 2; S a multiple of 16
//   valid    pred [B, S]        slots holding a real token (including slot `index`)
//   index    s32  []            the slot this step writes; slots > index are never read
// Results: out f32 [B, H, D]; cache_k; cache_v.
// Attribute round_probs_bf16: round the softmax probabilities to bfloat16 before the value sum, as
// the XLA path does when it computes in bfloat16 (keeps the two paths' tokens alike).
// A row with no visible slot (never the case in decoding: slot `index` is valid) gets zeros.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline float to_float(float x) { return x; }
inline float to_float(uint16_t bf16) {
  uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float round_to_bf16(float f) {  // round to nearest even, as XLA's convert does
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return f;  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

struct Problem {
  int64_t rows, heads, kv_heads, slots, dim;
  int64_t index;
  bool round_probs;
  const float* q;
  const void* k_new;
  const void* v_new;
  void* cache_k;
  void* cache_v;
  const bool* valid;
  float* out;
};

// Sixteen float lanes (one AVX-512 register; two AVX2 registers elsewhere), via GCC/Clang vector
// extensions so that accumulators stay in registers.
typedef float f32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int64_t kParallelBytes = 256 << 10;  // cache bytes read by one call from which helpers join

inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline f32x16 load16(const uint16_t* p) {
  u16x16 h;
  std::memcpy(&h, p, sizeof h);
  const u32x16 bits = __builtin_convertvector(h, u32x16) << 16;
  f32x16 v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

typedef int32_t i32x16 __attribute__((vector_size(64)));

inline f32x16 splat(float x) { return f32x16{} + x; }

// exp(x) on 16 lanes for the softmax's x = score - max <= 0 (libm's expf is a scalar call per slot,
// which made the softmax cost more than reading the cache): x = n ln2 + r with n rounded to nearest
// by the 1.5 * 2^23 trick, exp(r) by Cephes' degree-6 polynomial (relative error ~2e-7), 2^n from
// the exponent bits.
inline f32x16 exp_nonpositive(f32x16 x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  const f32x16 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const f32x16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  f32x16 poly = splat(1.9875691500e-4f);
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  poly = poly * r * r + r + 1.0f;
  const i32x16 bits = (__builtin_convertvector(n, i32x16) + 127) << 23;
  f32x16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return poly * scale;
}

inline float max_lane(f32x16 v) {
  float top = v[0];
  for (int64_t j = 1; j < kLanes; ++j) top = std::max(top, v[j]);
  return top;
}
inline float sum_lanes(f32x16 v) {
  float total = 0.0f;
  for (int64_t j = 0; j < kLanes; ++j) total += v[j];
  return total;
}

// Scores of kBlocks blocks of 16 slots from s0 (a multiple of 16) for kHeads query heads, in
// register accumulators (every loop bound is a compile-time constant, so nothing spills to the
// stack). Keys are stored in tiles of 16 slots, [S / 16, D, 16]: a block's scores are FMAs down its
// tile's D rows of 16 lanes, and the tiles are read front to back.
template <typename T, int64_t kDim, int kBlocks, int kHeads>
inline void score_blocks(const T* key_tiles, const float* q, float* scores, int64_t n_pad, int64_t s0) {
  const T* tiles = key_tiles + s0 * kDim;  // the tile of slots [s0, s0 + 16) starts at s0 * D
  f32x16 acc[kHeads][kBlocks] = {};
  for (int64_t d = 0; d < kDim; ++d) {
    f32x16 k[kBlocks];
    for (int b = 0; b < kBlocks; ++b) k[b] = load16(tiles + (b * kDim + d) * kLanes);
    for (int h = 0; h < kHeads; ++h) {
      const float qd = q[h * kDim + d];
      for (int b = 0; b < kBlocks; ++b) acc[h][b] += qd * k[b];
    }
  }
  for (int h = 0; h < kHeads; ++h) std::memcpy(scores + h * n_pad + s0, acc[h], sizeof acc[h]);
}

// out[h] = sum over slots s < n of probs[h, s] * values[s] for kHeads heads: each value row is read
// once and the sums stay in registers.
template <typename T, int64_t kDim, int kHeads>
inline void weighted_values(const T* values, const float* probs, int64_t n_pad, int64_t n, float* out) {
  constexpr int64_t kVectors = kDim / kLanes;
  f32x16 acc[kHeads][kVectors] = {};
  for (int64_t s = 0; s < n; ++s) {
    f32x16 v[kVectors];
    for (int64_t j = 0; j < kVectors; ++j) v[j] = load16(values + s * kDim + j * kLanes);
    for (int h = 0; h < kHeads; ++h) {
      const float w = probs[h * n_pad + s];
      for (int64_t j = 0; j < kVectors; ++j) acc[h][j] += w * v[j];
    }
  }
  for (int h = 0; h < kHeads; ++h) std::memcpy(out + h * kDim, acc[h], sizeof acc[h]);
}

// Both passes for `group` heads, in chunks of at most kMaxHeads (each chunk reads the keys or values
// once more; one chunk for G <= 4 at D = 64).
template <typename T, int64_t kDim>
void scores_for_heads(const T* key_tiles, const float* q, int64_t group, float* scores, int64_t n_pad) {
  for (int64_t g0 = 0; g0 < group; g0 += 4) {
    const int64_t heads = std::min<int64_t>(4, group - g0);
    const float* qh = q + g0 * kDim;
    float* sh = scores + g0 * n_pad;
    int64_t s0 = 0;
    auto run = [&](auto blocks) {
      constexpr int kB = decltype(blocks)::value;
      switch (heads) {
        case 1: score_blocks<T, kDim, kB, 1>(key_tiles, qh, sh, n_pad, s0); break;
        case 2: score_blocks<T, kDim, kB, 2>(key_tiles, qh, sh, n_pad, s0); break;
        case 3: score_blocks<T, kDim, kB, 3>(key_tiles, qh, sh, n_pad, s0); break;
        default: score_blocks<T, kDim, kB, 4>(key_tiles, qh, sh, n_pad, s0); break;
      }
    };
    for (; s0 + 2 * kLanes <= n_pad; s0 += 2 * kLanes) run(std::integral_constant<int, 2>{});
    for (; s0 < n_pad; s0 += kLanes) run(std::integral_constant<int, 1>{});
  }
}

template <typename T, int64_t kDim>
void values_for_heads(const T* values, const float* probs, int64_t n_pad, int64_t n, int64_t group, float* out) {
  constexpr int kMaxHeads = kDim <= 64 ? 4 : 2;  // accumulators: kMaxHeads x D / 16 registers
  for (int64_t g0 = 0; g0 < group; g0 += kMaxHeads) {
    const float* ph = probs + g0 * n_pad;
    float* oh = out + g0 * kDim;
    switch (std::min<int64_t>(kMaxHeads, group - g0)) {
      case 1: weighted_values<T, kDim, 1>(values, ph, n_pad, n, oh); break;
      case 2: weighted_values<T, kDim, 2>(values, ph, n_pad, n, oh); break;
      case 3: weighted_values<T, kDim, 3>(values, ph, n_pad, n, oh); break;
      default: weighted_values<T, kDim, kMaxHeads>(values, ph, n_pad, n, oh); break;
    }
  }
}

// kDim > 0 (a multiple of 16): the head dimension as a compile-time constant, with register
// accumulators; 0: any p.dim, plain loops. Keys are stored transposed ([D, S] per row and kv head)
// so each block of 16 slots gets its scores from vector FMAs down the D rows (no per-slot
// horizontal sum); values stay [S, D] so the weighted sum runs along D.
template <typename T, int64_t kDim>
void attend_one(const Problem& p, int64_t item, std::vector<float>& scratch) {
  const int64_t b = item / p.kv_heads, kv = item % p.kv_heads;
  const int64_t group = p.heads / p.kv_heads, dim = kDim > 0 ? kDim : p.dim, n = p.index + 1;
  const int64_t slots = p.slots;
  T* key_tiles = static_cast<T*>(p.cache_k) + item * slots * dim;  // [S / 16, D, 16]
  T* values = static_cast<T*>(p.cache_v) + item * slots * dim;  // [S, D]
  const T* k_new = static_cast<const T*>(p.k_new) + item * dim;
  T* tile = key_tiles + p.index / kLanes * kLanes * dim;
  for (int64_t d = 0; d < dim; ++d) tile[d * kLanes + p.index % kLanes] = k_new[d];
  std::memcpy(values + p.index * dim, static_cast<const T*>(p.v_new) + item * dim, dim * sizeof(T));

  const int64_t n_pad = (n + kLanes - 1) / kLanes * kLanes;  // score rows padded to whole blocks
  scratch.assign((group + 2) * n_pad, 0.0f);
  float* scores = scratch.data();  // [G, n_pad]
  float* keep = scores + group * n_pad;  // [n_pad] 1 for a visible slot, else 0
  float* bias = keep + n_pad;  // [n_pad] 0 for a visible slot, else -inf
  const float* q = p.q + (b * p.heads + kv * group) * dim;
  const bool* valid = p.valid + b * slots;
  float* out = p.out + (b * p.heads + kv * group) * dim;

  const float neg_inf = -std::numeric_limits<float>::infinity();
  bool any = false;
  for (int64_t s = 0; s < n_pad; ++s) {
    const bool visible = s < n && valid[s];
    any |= visible;
    keep[s] = visible ? 1.0f : 0.0f;
    bias[s] = visible ? 0.0f : neg_inf;
  }
  if (!any) {
    std::fill(out, out + group * dim, 0.0f);
    return;
  }
  if constexpr (kDim > 0) {
    scores_for_heads<T, kDim>(key_tiles, q, group, scores, n_pad);
  } else {
    for (int64_t s = 0; s < n; ++s) {
      const T* tile_row = key_tiles + s / kLanes * kLanes * dim + s % kLanes;
      for (int64_t g = 0; g < group; ++g) {
        float acc = 0.0f;
        for (int64_t d = 0; d < dim; ++d) acc += q[g * dim + d] * to_float(tile_row[d * kLanes]);
        scores[g * n_pad + s] = acc;
      }
    }
  }
  for (int64_t g = 0; g < group; ++g) {  // softmax over the visible slots of each query head
    float* sg = scores + g * n_pad;
    f32x16 top16 = splat(neg_inf);
    for (int64_t s = 0; s < n_pad; s += kLanes) {
      const f32x16 v = load16(sg + s) + load16(bias + s);
      top16 = v > top16 ? v : top16;
    }
    const float top = max_lane(top16);
    f32x16 total16 = {};
    for (int64_t s = 0; s < n_pad; s += kLanes) {
      const f32x16 e = load16(keep + s) > 0.0f ? exp_nonpositive(load16(sg + s) - top) : 0.0f;  // select: a
      // slot past `index` may hold anything (even NaN) and must not reach the sum
      std::memcpy(sg + s, &e, sizeof e);
      total16 += e;
    }
    const float total = sum_lanes(total16);
    const float inv = 1.0f / total;
    if (p.round_probs) {
#pragma omp simd
      for (int64_t s = 0; s < n; ++s) sg[s] = round_to_bf16(sg[s] * inv);
    } else {
#pragma omp simd
      for (int64_t s = 0; s < n; ++s) sg[s] *= inv;
    }
  }
  if constexpr (kDim > 0) {
    values_for_heads<T, kDim>(values, scores, n_pad, n, group, out);
  } else {
    for (int64_t g = 0; g < group; ++g) {
      const float* pg = scores + g * n_pad;
      float* og = out + g * dim;
      std::fill(og, og + dim, 0.0f);
      for (int64_t s = 0; s < n; ++s) {
        const float w = pg[s];
        const T* v = values + s * dim;
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) og[d] += w * to_float(v[d]);
      }
    }
  }
}

// Work items are claimed from a shared counter by the calling thread and by helpers scheduled on
// XLA's intra-op pool; the state is shared-owned so a helper that starts late finds no work and
// touches no buffer.
struct Work {
  Problem problem;
  bool bf16;
  int64_t items;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

void run(Work& work) {
  thread_local std::vector<float> scratch;
  for (int64_t i; (i = work.next.fetch_add(1, std::memory_order_relaxed)) < work.items;) {
    const int64_t dim = work.problem.dim;
    if (work.bf16) {
      dim == 64    ? attend_one<uint16_t, 64>(work.problem, i, scratch)
      : dim == 128 ? attend_one<uint16_t, 128>(work.problem, i, scratch)
                   : attend_one<uint16_t, 0>(work.problem, i, scratch);
    } else {
      dim == 64    ? attend_one<float, 64>(work.problem, i, scratch)
      : dim == 128 ? attend_one<float, 128>(work.problem, i, scratch)
                   : attend_one<float, 0>(work.problem, i, scratch);
    }
    work.done.fetch_add(1, std::memory_order_release);
  }
}

ffi::Error DecodeAttention(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::AnyBuffer k_new,
                           ffi::AnyBuffer v_new, ffi::AnyBuffer cache_k_in, ffi::AnyBuffer cache_v_in,
                           ffi::Buffer<ffi::PRED> valid, ffi::Buffer<ffi::S32> index,
                           ffi::Result<ffi::Buffer<ffi::F32>> out, ffi::Result<ffi::AnyBuffer> cache_k,
                           ffi::Result<ffi::AnyBuffer> cache_v, bool round_probs_bf16) {
  const auto key_dims = cache_k->dimensions();
  const auto value_dims = cache_v->dimensions();
  const auto q_dims = q.dimensions();
  if (key_dims.size() != 5 || value_dims.size() != 4 || q_dims.size() != 3) {
    return ffi::Error::InvalidArgument(
        "rltf_decode_attention: q must be [B, H, D], keys [B, K, S / 16, D, 16], values [B, K, S, D]");
  }
  const ffi::DataType dtype = cache_k->element_type();
  if ((dtype != ffi::DataType::F32 && dtype != ffi::DataType::BF16) || k_new.element_type() != dtype ||
      v_new.element_type() != dtype || cache_v->element_type() != dtype) {
    return ffi::Error::InvalidArgument("rltf_decode_attention: cache, k_new and v_new must all be f32 or all bf16");
  }
  Problem p{};
  p.rows = value_dims[0];
  p.kv_heads = value_dims[1];
  p.slots = value_dims[2];
  p.dim = value_dims[3];
  p.heads = q_dims[1];
  if (q_dims[0] != p.rows || q_dims[2] != p.dim || p.heads % p.kv_heads != 0 || key_dims[0] != p.rows ||
      key_dims[1] != p.kv_heads || key_dims[2] * kLanes != p.slots || key_dims[3] != p.dim ||
      key_dims[4] != kLanes) {
    return ffi::Error::InvalidArgument(
        "rltf_decode_attention: q [B, H, D], keys [B, K, S / 16, D, 16] and values [B, K, S, D] do not match");
  }
  p.index = index.typed_data()[0];
  if (p.index < 0 || p.index >= p.slots) {
    return ffi::Error::InvalidArgument("rltf_decode_attention: index " + std::to_string(p.index) +
                                       " outside the cache's " + std::to_string(p.slots) + " slots");
  }
  const size_t bytes = cache_k_in.size_bytes();
  if (cache_k->untyped_data() != cache_k_in.untyped_data()) {
    std::memcpy(cache_k->untyped_data(), cache_k_in.untyped_data(), bytes);
  }
  if (cache_v->untyped_data() != cache_v_in.untyped_data()) {
    std::memcpy(cache_v->untyped_data(), cache_v_in.untyped_data(), bytes);
  }
  p.round_probs = round_probs_bf16;
  p.q = q.typed_data();
  p.k_new = k_new.untyped_data();
  p.v_new = v_new.untyped_data();
  p.cache_k = cache_k->untyped_data();
  p.cache_v = cache_v->untyped_data();
  p.valid = valid.typed_data();
  p.out = out->typed_data();

  auto work = std::make_shared<Work>();
  work->problem = p;
  work->bf16 = dtype == ffi::DataType::BF16;
  work->items = p.rows * p.kv_heads;
  // Waking a helper costs tens of microseconds: small calls (batch 1: ~0.1 MB of cache) run on the
  // calling thread alone.
  const int64_t cache_bytes = work->items * (p.index + 1) * p.dim * 2 * (work->bf16 ? 2 : 4);
  const int64_t helpers =
      cache_bytes < kParallelBytes ? 0 : std::min<int64_t>(pool.num_threads(), work->items) - 1;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([work] { run(*work); });
  run(*work);
  while (work->done.load(std::memory_order_acquire) < work->items) std::this_thread::yield();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RltfDecodeAttention, DecodeAttention,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // q
                                  .Arg<ffi::AnyBuffer>()          // k_new
                                  .Arg<ffi::AnyBuffer>()          // v_new
                                  .Arg<ffi::AnyBuffer>()          // cache_k
                                  .Arg<ffi::AnyBuffer>()          // cache_v
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // valid
                                  .Arg<ffi::Buffer<ffi::S32>>()   // index
                                  .Ret<ffi::Buffer<ffi::F32>>()   // out
                                  .Ret<ffi::AnyBuffer>()          // cache_k (aliased)
                                  .Ret<ffi::AnyBuffer>()          // cache_v (aliased)
                                  .Attr<bool>("round_probs_bf16"));
