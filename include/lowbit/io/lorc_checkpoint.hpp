#pragma once
// LoRC factors in a lowbit checkpoint: <base>.lorc_u [out, r] and <base>.lorc_v [r, in],
// stored as F32 or F16 (the effective values, exactly representable there), or for int8
// storage as I8 codes plus one F32 scale per row (<base>.lorc_u_scales, .lorc_v_scales),
// with value = code * scale. The layer's metadata entry records {"lorc": {"rank", "storage"}}.
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/algo/low_rank.hpp"
#include "lowbit/io/checkpoint.hpp"

namespace lowbit {

// The metadata fragment to merge into write_quantized_matrix's `extra`.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline nlohmann::json lorc_metadata(const LowRank& lr) {
  const char* s = lr.storage == lorc_storage::f32 ? "f32" : lr.storage == lorc_storage::f16 ? "f16" : "int8";
  return {{"rank", lr.rank()}, {"storage", s}};
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void write_lorc(SafetensorsWriter& w, const std::string& weight_name, const LowRank& lr) {
  const std::string base = checkpoint_base_name(weight_name);
  const auto put = [&](const std::string& suffix, const RowMatrixXf& m, const RowMatrixXi8& codes,
                       const std::vector<float>& scales) {
    const std::vector<std::int64_t> shape{m.rows(), m.cols()};
    const std::size_t n = static_cast<std::size_t>(m.size());
    if (lr.storage == lorc_storage::f32) {
      w.add(base + suffix, tensor_dtype::f32, shape, m.data(), n * 4);
    } else if (lr.storage == lorc_storage::f16) {
      std::vector<std::uint16_t> h(n);
      for (std::size_t i = 0; i < n; ++i) {
        h[i] = detail::float_to_half(m.data()[i]);
        if (detail::half_to_float(h[i]) != m.data()[i])
          detail::fail("checkpoint layer '" + weight_name + "': LoRC factor is not fp16-representable");
      }
      w.add(base + suffix, tensor_dtype::f16, shape, h);
    } else {
      if (codes.rows() != m.rows() || codes.cols() != m.cols() || scales.size() != std::size_t(m.rows()))
        detail::fail("checkpoint layer '" + weight_name + "': int8 LoRC codes/scales have the wrong size");
      w.add(base + suffix, tensor_dtype::i8, shape, codes.data(), n);
      w.add(base + suffix + "_scales", tensor_dtype::f32, {m.rows()}, scales);
    }
  };
  put(".lorc_u", lr.u, lr.u_codes, lr.u_scales);
  put(".lorc_v", lr.v, lr.v_codes, lr.v_scales);
}

// The LoRC factors of layer `base`, or an empty LowRank (rank 0) when it has none.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline LowRank load_lorc(const SafetensorsFile& f, const std::string& base) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const json_t info = checkpoint_layer_info(f, base);
  LowRank lr;
  const auto it = info.find("lorc");
  if (it == info.end()) return lr;
  const std::string storage = detail::json_string(*it, "storage", base);
  lr.storage = storage == "f32" ? lorc_storage::f32 : storage == "f16" ? lorc_storage::f16 : lorc_storage::int8;
  if (storage != "f32" && storage != "f16" && storage != "int8")
    detail::fail(f.source() + ": layer '" + base + "': unknown LoRC storage '" + storage + "'");
  const auto get = [&](const std::string& suffix, RowMatrixXf& m, RowMatrixXi8& codes, std::vector<float>& scales) {
    const TensorView& t = f.at(base + suffix);
    if (t.rank() != 2) detail::fail(f.source() + ": tensor '" + t.name + "' must be rank 2");
    m = t.to_matrix();
    if (lr.storage == lorc_storage::int8) {
      if (t.dtype != tensor_dtype::i8) detail::fail(f.source() + ": tensor '" + t.name + "' must be I8");
      const TensorView& s = f.at(base + suffix + "_scales");
      if (s.dtype != tensor_dtype::f32 || s.shape != std::vector<std::int64_t>{t.shape[0]})
        detail::fail(f.source() + ": tensor '" + s.name + "' must be F32 [" + std::to_string(t.shape[0]) + "]");
      codes.resize(m.rows(), m.cols());
      std::memcpy(codes.data(), t.data, t.nbytes);
      scales = s.to_float_vector();
      for (Eigen::Index r = 0; r < m.rows(); ++r) m.row(r) = codes.row(r).cast<float>() * scales[std::size_t(r)];
    } else if (t.dtype != (lr.storage == lorc_storage::f32 ? tensor_dtype::f32 : tensor_dtype::f16)) {
      detail::fail(f.source() + ": tensor '" + t.name + "' has dtype " + std::string(dtype_name(t.dtype)) +
                   " but the layer says " + storage);
    }
  };
  get(".lorc_u", lr.u, lr.u_codes, lr.u_scales);
  get(".lorc_v", lr.v, lr.v_codes, lr.v_scales);
  if (lr.u.cols() != lr.v.rows()) detail::fail(f.source() + ": layer '" + base + "': LoRC factor ranks differ");
  return lr;
}

}  // namespace lowbit
