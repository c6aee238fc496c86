#pragma once
// KvCache: the keys and values of every layer for positions [0, length) of one sequence,
// stored as fp32, fp16, bf16 or FP8 E4M3 (kv_cache_type).
//
//  - f32: exact; attention reads the stored rows in place.
//  - f16 / bf16: each value rounded to nearest even (Eigen::half / Eigen::bfloat16).
//  - fp8 (E4M3): each key/value vector of one head at one position gets its own scale
//    s = amax / 448 (448 = E4M3's largest finite value, so the largest element maps onto it;
//    s = 1 for an all-zero vector) and stores E4M3 codes of x / s plus the fp32 scale: 1 byte
//    per element + 4 bytes per head vector. A per-(position, head) scale needs no calibration
//    and follows the per-token scaling the activation quantizers use (quant/activation.hpp).
// Reading (keys()/values()) dequantizes one kv head's rows [0, len) into a scratch matrix
// the caller owns (one per thread), so the attention code is the same for every storage type
// and heads can be read on several threads at once. Rows are
// allocated as the sequence grows (not max_seq_len up front), so a model with a 128K
// context does not reserve gigabytes for a short generation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/convert.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/model/llama_config.hpp"

namespace lowbit::model {

enum class kv_cache_type { f32, f16, bf16, fp8 };

inline const char* to_string(kv_cache_type t) noexcept {
  switch (t) {
    case kv_cache_type::f32: return "f32";
    case kv_cache_type::f16: return "f16";
    case kv_cache_type::bf16: return "bf16";
    case kv_cache_type::fp8: return "fp8";
  }
  return "?";
}

inline kv_cache_type parse_kv_cache_type(const std::string& s) {
  if (s == "f32" || s == "fp32") return kv_cache_type::f32;
  if (s == "f16" || s == "fp16") return kv_cache_type::f16;
  if (s == "bf16") return kv_cache_type::bf16;
  if (s == "fp8" || s == "e4m3" || s == "float8_e4m3fn") return kv_cache_type::fp8;
  lowbit::detail::fail("--kv-cache: unknown type '" + s + "' (f32, f16, bf16, fp8)");
}

// Bytes one cached element costs, scales included (for reports).
inline double kv_bytes_per_element(kv_cache_type t, int head_dim) noexcept {
  switch (t) {
    case kv_cache_type::f32: return 4.0;
    case kv_cache_type::f16:
    case kv_cache_type::bf16: return 2.0;
    case kv_cache_type::fp8: return 1.0 + 4.0 / head_dim;
  }
  return 4.0;
}

// A [len, head_dim] view of one kv head's rows (strided into the fp32 store, or the scratch).
using KvHeadView = Eigen::Map<const RowMatrixXf, 0, Eigen::OuterStride<>>;

// KvCache (the alias below) is a class template only so that its conversions (f16, bf16,
// FP8 codes) are compiled where a cache is used ("Compile time" in docs/design.md).
// Deferred is never named.
template <class Deferred>
class BasicKvCache {
 public:
  explicit BasicKvCache(const LlamaConfig& c, kv_cache_type type = kv_cache_type::f32)
      : type_(type), max_len_(c.max_seq_len), kv_dim_(c.kv_dim()), head_dim_(c.head_dim()),
        n_kv_heads_(c.n_kv_heads) {
    layers_.resize(static_cast<std::size_t>(c.n_layers));
  }

  int length = 0;  // positions filled (the model's forward advances it)

  kv_cache_type type() const noexcept { return type_; }
  // Whether this cache was made for a model of config c's shape.
  bool fits(const LlamaConfig& c) const noexcept {
    return static_cast<int>(layers_.size()) == c.n_layers && kv_dim_ == c.kv_dim() && head_dim_ == c.head_dim() &&
           n_kv_heads_ == c.n_kv_heads && max_len_ == c.max_seq_len;
  }
  void clear() { length = 0; }
  int capacity() const noexcept { return capacity_; }

  // Stores k and v ([n, kv_dim] each) at positions p0 .. p0+n-1 of `layer`.
  // k, v (here) and out (read) are spelled dependent (deferred_t): the casts are checked
  // where a cache is used.
  void store(int layer, int p0, const deferred_t<Deferred, RowMatrixXf>& k, const deferred_t<Deferred, RowMatrixXf>& v) {
    const int n = static_cast<int>(k.rows());
    if (layer < 0 || layer >= static_cast<int>(layers_.size()) || p0 < 0 || p0 + n > max_len_ ||
        k.cols() != kv_dim_ || v.cols() != kv_dim_ || v.rows() != n)
      lowbit::detail::fail("KvCache::store: layer " + std::to_string(layer) + ", positions " + std::to_string(p0) +
                           "+" + std::to_string(n) + " out of range or wrong width");
    reserve(p0 + n);
    Layer& L = layers_[static_cast<std::size_t>(layer)];
    switch (type_) {
      case kv_cache_type::f32:
        L.k32.middleRows(p0, n) = k;
        L.v32.middleRows(p0, n) = v;
        break;
      case kv_cache_type::f16:
        L.k16.middleRows(p0, n) = k.template cast<Eigen::half>();
        L.v16.middleRows(p0, n) = v.template cast<Eigen::half>();
        break;
      case kv_cache_type::bf16:
        L.kb16.middleRows(p0, n) = k.template cast<Eigen::bfloat16>();
        L.vb16.middleRows(p0, n) = v.template cast<Eigen::bfloat16>();
        break;
      case kv_cache_type::fp8:
        encode_fp8(k, p0, L.k8, L.ks);
        encode_fp8(v, p0, L.v8, L.vs);
        break;
    }
  }

  // Keys / values of kv head g at positions [0, len) as fp32 [len, head_dim]. An fp32 cache
  // returns a view of its own storage; any other type decodes into `scratch`, the caller's
  // buffer, and the view points there (valid until scratch changes). The buffer is the
  // caller's so that threads reading different heads at once never share one.
  KvHeadView keys(int layer, int g, int len, RowMatrixXf& scratch) const { return read(layer, g, len, true, scratch); }
  KvHeadView values(int layer, int g, int len, RowMatrixXf& scratch) const {
    return read(layer, g, len, false, scratch);
  }

 private:
  struct Layer {
    RowMatrixXf k32, v32;
    RowMatrixXh k16, v16;
    RowMatrixXbf16 kb16, vb16;
    Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> k8, v8;
    RowMatrixXf ks, vs;  // fp8 scales [rows, n_kv_heads]
  };

  // Grows every layer's storage to at least `rows` rows (doubling, capped at max_seq_len).
  void reserve(int rows) {
    if (rows <= capacity_) return;
    const int cap = std::min(max_len_, std::max({rows, 2 * capacity_, 16}));
    for (Layer& L : layers_) {
      switch (type_) {
        case kv_cache_type::f32: L.k32.conservativeResize(cap, kv_dim_); L.v32.conservativeResize(cap, kv_dim_); break;
        case kv_cache_type::f16: L.k16.conservativeResize(cap, kv_dim_); L.v16.conservativeResize(cap, kv_dim_); break;
        case kv_cache_type::bf16: L.kb16.conservativeResize(cap, kv_dim_); L.vb16.conservativeResize(cap, kv_dim_); break;
        case kv_cache_type::fp8:
          L.k8.conservativeResize(cap, kv_dim_);
          L.v8.conservativeResize(cap, kv_dim_);
          L.ks.conservativeResize(cap, n_kv_heads_);
          L.vs.conservativeResize(cap, n_kv_heads_);
          break;
      }
    }
    capacity_ = cap;
  }

  template <class Codes>
  void encode_fp8(const RowMatrixXf& x, int p0, Codes& codes, RowMatrixXf& scales) {
    const float fmax = float8_e4m3fn::max().to_float();
    tmp_.resize(static_cast<std::size_t>(head_dim_));
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      for (int g = 0; g < n_kv_heads_; ++g) {
        const float* src = x.row(t).data() + static_cast<std::ptrdiff_t>(g) * head_dim_;
        float amax = 0.0f;
        for (int i = 0; i < head_dim_; ++i) amax = std::max(amax, std::abs(src[i]));
        // A non-finite value would poison the scale; keep it out (it is stored as NaN).
        const float s = (std::isfinite(amax) && amax > 0.0f) ? amax / fmax : 1.0f;
        for (int i = 0; i < head_dim_; ++i) tmp_[static_cast<std::size_t>(i)] = src[i] / s;
        auto* dst = reinterpret_cast<float8_e4m3fn*>(codes.row(p0 + t).data() + static_cast<std::ptrdiff_t>(g) * head_dim_);
        convert_n(tmp_.data(), dst, static_cast<std::size_t>(head_dim_));
        scales(p0 + t, g) = s;
      }
  }

  KvHeadView read(int layer, int g, int len, bool key, deferred_t<Deferred, RowMatrixXf>& out) const {
    if (layer < 0 || layer >= static_cast<int>(layers_.size()) || g < 0 || g >= n_kv_heads_ || len < 0 ||
        len > capacity_)
      lowbit::detail::fail("KvCache: read of layer " + std::to_string(layer) + ", head " + std::to_string(g) +
                           ", " + std::to_string(len) + " rows out of range");
    const Layer& L = layers_[static_cast<std::size_t>(layer)];
    const Eigen::Index c0 = static_cast<Eigen::Index>(g) * head_dim_;
    if (type_ == kv_cache_type::f32) {
      const RowMatrixXf& m = key ? L.k32 : L.v32;
      return KvHeadView(m.data() + c0, len, head_dim_, Eigen::OuterStride<>(kv_dim_));
    }
    out.resize(len, head_dim_);
    switch (type_) {
      case kv_cache_type::f16: out = (key ? L.k16 : L.v16).block(0, c0, len, head_dim_).template cast<float>(); break;
      case kv_cache_type::bf16: out = (key ? L.kb16 : L.vb16).block(0, c0, len, head_dim_).template cast<float>(); break;
      case kv_cache_type::fp8: {
        const auto& codes = key ? L.k8 : L.v8;
        const RowMatrixXf& sc = key ? L.ks : L.vs;
        for (int t = 0; t < len; ++t) {
          to_float_n(reinterpret_cast<const float8_e4m3fn*>(codes.row(t).data() + c0), out.row(t).data(),
                     static_cast<std::size_t>(head_dim_));
          out.row(t) *= sc(t, g);
        }
        break;
      }
      case kv_cache_type::f32: break;
    }
    return KvHeadView(out.data(), len, head_dim_, Eigen::OuterStride<>(head_dim_));
  }

  kv_cache_type type_;
  int max_len_, kv_dim_, head_dim_, n_kv_heads_;
  int capacity_ = 0;
  std::vector<Layer> layers_;
  std::vector<float> tmp_;
};

using KvCache = BasicKvCache<void>;

}  // namespace lowbit::model
