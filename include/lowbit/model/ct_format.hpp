#pragma once
// compressed-tensors (the checkpoint format llm-compressor writes and vLLM reads) <-> lowbit's
// QuantizedLinear, one linear layer at a time. docs/interop.md has the table and the source
// this was read from; the conventions that matter for exactness:
//
//  - Dequantization is x = (x_q - zero_point) * scale, evaluated in the scale tensor's dtype.
//    lowbit's dequantize() is (value(code) - zero) * scale in fp32, so scales are written as
//    F32 (an fp16/bf16 scale widened exactly): an F16 scale would make the reader round the
//    product to fp16 and lose the bit-for-bit match.
//  - Integer codes live in the signed range [-2^(b-1), 2^(b-1) - 1] and the zero point is in
//    that same signed range. lowbit's asymmetric codes and zero points are unsigned
//    (0..2^b - 1), so both are shifted by -2^(b-1): the difference code - zero is unchanged.
//  - pack-quantized: 8 four-bit values per int32 along the row (input) dimension, element i
//    of the word at bits 4i..4i+3 (lowest first), each stored as value + 8 (unsigned); a row
//    is padded to whole words. The zero point ([rows, groups], int4 too) is packed the same
//    way along the *row* (output) dimension: weight_zero_point is [ceil(rows / 8), groups].
//    weight_shape holds [rows, cols].
//  - int-quantized / float-quantized: `weight` as I8 / F8_E4M3 [rows, cols]; int zero points
//    (asymmetric int8) as I8.
//  - nvfp4-pack-quantized: weight_packed U8 [rows, cols / 2], two E2M1 codes per byte, low
//    nibble first (lowbit's layout); weight_scale F8_E4M3 [rows, cols / 16]; the reader's
//    scale is weight_scale / weight_global_scale in fp32, lowbit's decode(s_b) / g.
//  - mxfp4-pack-quantized: weight_packed as NVFP4; weight_scale U8 [rows, cols / 32], the
//    E8M0 byte (the reader's scale is 2^(e - 127), lowbit's MX scale code); no global scale.
//  - Scales: [1] per tensor, [rows, 1] per channel, [rows, cols / group] per group (the
//    reader requires cols to be a whole number of groups).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/algo/quantized_linear.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/formats/nibbles.hpp"
#include "lowbit/io/sharded.hpp"
#include "lowbit/quant/spec_text.hpp"

namespace lowbit::model {

namespace detail {

// One tensor to write: name, dtype, shape, bytes.
struct ct_tensor {
  std::string name;
  tensor_dtype dtype = tensor_dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;
};

// A layer in compressed-tensors form: its format, the weights / input_activations args of
// its config group, and its tensors.
struct ct_layer {
  std::string format;
  nlohmann::json weights;
  nlohmann::json input_activations;  // null: none (A16)
  std::vector<ct_tensor> tensors;
};

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline ct_tensor ct_f32_tensor(std::string name, std::vector<std::int64_t> shape, const std::vector<float>& v) {
  ct_tensor t{std::move(name), tensor_dtype::f32, std::move(shape), {}};
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

// QuantizationArgs as JSON (the fields a reader needs; the rest at their defaults).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline nlohmann::json ct_args(int bits, const char* type, bool symmetric, const char* strategy,
                              std::optional<std::int64_t> group, bool dynamic) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  json_t a = {{"num_bits", bits},         {"type", type},       {"symmetric", symmetric},
                      {"strategy", strategy},     {"dynamic", dynamic}, {"actorder", nullptr},
                      {"block_structure", nullptr}, {"observer", dynamic ? json_t(nullptr) : json_t("minmax")},
                      {"observer_kwargs", json_t::object()}};
  a["group_size"] = group ? json_t(*group) : json_t(nullptr);
  return a;
}

// The one rule of which quantized layers compressed-tensors holds exactly, from what is known
// before quantizing (the weight scheme, the layer's width, its parts): empty when the layer has
// a form, else what has none. ct_encode_layer() refuses with it, and model::exportable()
// (model/exportable.hpp) answers with it. `group_size` is the effective one (cols unless per
// group); `smoothing` means a vector that is not all ones and was not folded into a norm.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::string ct_layer_refusal(const QuantSpec& s, std::int64_t cols, std::int64_t group_size, bool lorc,
                                    bool smoothing, bool bias, const std::optional<ActivationQuant>& acts) {
  if (s.zero == zero_form::float_offset)
    return "float-offset groups (a GGUF Q4_K import) have no compressed-tensors form";
  if (lorc) return "LoRC factors (compressed-tensors has no low-rank correction term)";
  if (smoothing) return "a SmoothQuant smoothing vector (compressed-tensors has none; it must be folded into the preceding norm)";
  if (bias) return "a bias on a quantized layer is not exported (not implemented)";
  if (acts) {
    if (acts->group != 0)
      return "per-group activation quantization (group " + std::to_string(acts->group) +
             ") is not exported (compressed-tensors: per-token only here)";
    if (acts->format != act_format::int8 && acts->format != act_format::float8_e4m3fn)
      return std::string("activations ") + std::string(lowbit::to_string(acts->format)) + " have no compressed-tensors type";
  }
  const bool nvfp4 = s.format == element_format::float4_e2m1fn && s.constraint == scale_constraint::nvfp4;
  const bool mxfp4 = s.format == element_format::float4_e2m1fn && s.constraint == scale_constraint::mx;
  if (!mxfp4 && s.constraint == scale_constraint::mx)
    return "MX scales on " + std::string(lowbit::to_string(s.format)) +
           " are not exported (compressed-tensors' MX format here: mxfp4-pack-quantized, E2M1 only)";
  if (!nvfp4 && s.constraint == scale_constraint::nvfp4) return "NVFP4 scales on a format other than E2M1";
  if (s.gran == granularity::per_group && group_size < cols && cols % group_size != 0)
    return "group size " + std::to_string(group_size) + " does not divide the " + std::to_string(cols) +
           " columns (compressed-tensors groups must tile the row)";
  const bool per_tensor = s.gran == granularity::per_tensor;
  if (per_tensor && !s.symmetric) return "per-tensor asymmetric quantization is not exported";
  if (s.format == element_format::float8_e4m3fn) return s.symmetric ? std::string() : "asymmetric FP8";
  if (s.format == element_format::int8) return {};
  if (s.format == element_format::int4) return per_tensor ? "per-tensor int4 is not exported (pack-quantized: group or channel)" : "";
  if (nvfp4) return cols % 16 != 0 ? "NVFP4 needs a multiple of 16 columns" : "";
  if (mxfp4) return cols % 32 != 0 ? "MXFP4 needs a multiple of 32 columns" : "";
  return std::string("element format ") + std::string(lowbit::to_string(s.format)) +
         " has no compressed-tensors format (FP8 E4M3, int8, int4, NVFP4, MXFP4 are exported)";
}

// lowbit layer -> compressed-tensors tensors named `module`.weight_*; `who` names the layer
// in refusals ("<in>: compressed-tensors export: layer X: ..."). Row order as stored.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline ct_layer ct_encode_layer(const deferred_t<Deferred, QuantizedLinear>& ql, const std::string& module, const std::string& who) {
  auto refuse = [&](const std::string& what) -> void { lowbit::detail::fail(who + what); };
  const QuantizedMatrix& q = ql.weight;
  const QuantSpec& s = q.spec;
  if (const std::string why = ct_layer_refusal(s, q.cols, q.group_size, ql.lorc.has_value(),
                                              ql.smoothing && !(ql.smoothing->array() == 1.0f).all(), ql.bias.has_value(),
                                              ql.activations);
      !why.empty())
    refuse(why);
  // Past the rule, only the data can refuse (a non-finite scale); the defaults below are not reached.
  const auto unreachable = [&] { refuse("not exported (the export rule let this layer through)"); };
  deferred_t<Deferred, ct_layer> out;
  // Activations: dynamic per-token only.
  if (ql.activations) {
    switch (ql.activations->format) {
      case act_format::int8: out.input_activations = ct_args<Deferred>(8, "int", true, "token", std::nullopt, true); break;
      case act_format::float8_e4m3fn: out.input_activations = ct_args<Deferred>(8, "float", true, "token", std::nullopt, true); break;
      default: unreachable();
    }
  }
  const bool nvfp4 = s.format == element_format::float4_e2m1fn && s.constraint == scale_constraint::nvfp4;
  const bool mxfp4 = s.format == element_format::float4_e2m1fn && s.constraint == scale_constraint::mx;
  // Strategy and the scale tensor's shape.
  const char* strategy = "tensor";
  std::optional<std::int64_t> group;
  std::vector<std::int64_t> sshape{1};
  if (s.gran == granularity::per_channel || (s.gran == granularity::per_group && q.groups_per_row == 1 && q.group_size >= q.cols)) {
    strategy = "channel";
    sshape = {q.rows, 1};
  } else if (s.gran == granularity::per_group) {
    strategy = nvfp4 ? "tensor_group" : "group";
    group = q.group_size;
    sshape = {q.rows, q.groups_per_row};
  }
  const bool per_tensor = s.gran == granularity::per_tensor;
  const std::size_t n_groups = static_cast<std::size_t>(q.rows * q.groups_per_row);
  std::vector<float> scales = per_tensor ? std::vector<float>{q.scales.at(0)} : q.scales;
  for (float v : scales)
    if (!std::isfinite(v)) refuse("a non-finite scale");
  const std::string& m = module;
  if (s.format == element_format::float8_e4m3fn) {
    out.format = "float-quantized";
    out.weights = ct_args<Deferred>(8, "float", true, strategy, group, false);
    out.tensors.push_back({m + ".weight", tensor_dtype::f8_e4m3, {q.rows, q.cols}, q.codes});
    out.tensors.push_back(ct_f32_tensor(m + ".weight_scale", sshape, scales));
  } else if (s.format == element_format::int8) {
    out.format = "int-quantized";
    out.weights = ct_args<Deferred>(8, "int", s.symmetric, strategy, group, false);
    ct_tensor w{m + ".weight", tensor_dtype::i8, {q.rows, q.cols}, q.codes};
    if (!s.symmetric)  // unsigned code u -> signed u - 128 (same two's complement byte as u ^ 0x80)
      for (auto& b : w.bytes) b = static_cast<std::uint8_t>(b ^ 0x80u);
    out.tensors.push_back(std::move(w));
    out.tensors.push_back(ct_f32_tensor(m + ".weight_scale", sshape, scales));
    if (!s.symmetric) {
      ct_tensor z{m + ".weight_zero_point", tensor_dtype::i8, sshape, {}};
      for (std::size_t i = 0; i < n_groups; ++i) z.bytes.push_back(static_cast<std::uint8_t>(q.zeros[i] ^ 0x80u));
      out.tensors.push_back(std::move(z));
    }
  } else if (s.format == element_format::int4) {
    out.format = "pack-quantized";
    out.weights = ct_args<Deferred>(4, "int", s.symmetric, strategy, group, false);
    const std::int64_t words = (q.cols + 7) / 8;
    std::vector<std::uint32_t> packed(static_cast<std::size_t>(q.rows * words), 0);
    // lowbit symmetric int4 is two's complement (v & 15); stored is v + 8 = that ^ 8.
    // Asymmetric codes u are stored as (u - 8) + 8 = u.
    const std::uint32_t flip = s.symmetric ? 8u : 0u;
    for (std::int64_t r = 0; r < q.rows; ++r)
      for (std::int64_t c = 0; c < q.cols; ++c) {
        const std::uint32_t v = get_nibble(q.codes.data() + r * q.row_stride, static_cast<std::size_t>(c)) ^ flip;
        packed[static_cast<std::size_t>(r * words + c / 8)] |= v << (4 * (c % 8));
      }
    ct_tensor w{m + ".weight_packed", tensor_dtype::i32, {q.rows, words}, {}};
    w.bytes.resize(packed.size() * 4);
    std::memcpy(w.bytes.data(), packed.data(), w.bytes.size());
    out.tensors.push_back(std::move(w));
    out.tensors.push_back(ct_f32_tensor(m + ".weight_scale", sshape, scales));
    const std::int32_t shape2[2] = {static_cast<std::int32_t>(q.rows), static_cast<std::int32_t>(q.cols)};
    ct_tensor ws{m + ".weight_shape", tensor_dtype::i32, {2}, std::vector<std::uint8_t>(8)};
    std::memcpy(ws.bytes.data(), shape2, 8);
    out.tensors.push_back(std::move(ws));
    if (!s.symmetric) {
      const std::int64_t g = q.groups_per_row, zrows = (q.rows + 7) / 8;
      std::vector<std::uint32_t> zp(static_cast<std::size_t>(zrows * g), 0);
      for (std::int64_t r = 0; r < q.rows; ++r)
        for (std::int64_t j = 0; j < g; ++j)
          zp[static_cast<std::size_t>((r / 8) * g + j)] |= std::uint32_t(q.zeros[static_cast<std::size_t>(r * g + j)] & 15u)
                                                           << (4 * (r % 8));
      ct_tensor z{m + ".weight_zero_point", tensor_dtype::i32, {zrows, g}, {}};
      z.bytes.resize(zp.size() * 4);
      std::memcpy(z.bytes.data(), zp.data(), z.bytes.size());
      out.tensors.push_back(std::move(z));
    }
  } else if (nvfp4) {
    out.format = "nvfp4-pack-quantized";
    out.weights = ct_args<Deferred>(4, "float", true, "tensor_group", 16, false);
    out.tensors.push_back({m + ".weight_packed", tensor_dtype::u8, {q.rows, q.cols / 2}, q.codes});
    out.tensors.push_back({m + ".weight_scale", tensor_dtype::f8_e4m3, {q.rows, q.groups_per_row}, q.scale_codes});
    out.tensors.push_back(ct_f32_tensor(m + ".weight_global_scale", {1}, {q.tensor_scale}));
  } else if (mxfp4) {
    // E2M1 codes as NVFP4 (low nibble first); the scale is the E8M0 byte itself (vLLM reads
    // weight_scale U8 as 2^(e - 127), lowbit's E8M0 code); no global scale.
    out.format = "mxfp4-pack-quantized";
    out.weights = ct_args<Deferred>(4, "float", true, "group", 32, false);
    out.tensors.push_back({m + ".weight_packed", tensor_dtype::u8, {q.rows, q.cols / 2}, q.codes});
    out.tensors.push_back({m + ".weight_scale", tensor_dtype::u8, {q.rows, q.groups_per_row}, q.scale_codes});
  } else {
    unreachable();
  }
  return out;
}

// The tensor `name` of `st`, or an error naming it.
inline const TensorView& ct_need(const SafetensorsModel& st, const std::string& name, const std::string& who) {
  const TensorView* t = st.find(name);
  if (t == nullptr) lowbit::detail::fail(who + "tensor " + name + " is missing");
  return *t;
}
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void ct_expect(const TensorView& t, tensor_dtype d, const std::vector<std::int64_t>& shape, const std::string& who) {
  auto show = [](const std::vector<std::int64_t>& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
  };
  if (t.dtype != d)
    lowbit::detail::fail(who + "tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) + ", expected " +
                         std::string(dtype_name(d)));
  if (t.shape != shape)
    lowbit::detail::fail(who + "tensor " + t.name + " has shape " + show(t.shape) + ", expected " + show(shape));
}

// A scale tensor (F32, F16 or BF16) of `shape` as fp32; the dtype it had.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<float> ct_scales(const TensorView& t, const std::vector<std::int64_t>& shape, scale_dtype& kind,
                                    const std::string& who) {
  if (t.dtype != tensor_dtype::f32 && t.dtype != tensor_dtype::f16 && t.dtype != tensor_dtype::bf16)
    lowbit::detail::fail(who + "tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) +
                         ", expected F32, F16 or BF16");
  ct_expect(t, t.dtype, shape, who);
  kind = t.dtype == tensor_dtype::f32 ? scale_dtype::f32 : t.dtype == tensor_dtype::f16 ? scale_dtype::f16 : scale_dtype::bf16;
  std::vector<float> v = t.to_float_vector();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]) || v[i] < 0.0f)
      lowbit::detail::fail(who + "tensor " + t.name + " has a negative or non-finite scale at index " + std::to_string(i));
  return v;
}

template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::string ct_json_str(const deferred_t<Deferred, nlohmann::json>& a, const char* key, const std::string& def = "") {
  const auto it = a.find(key);
  if (it == a.end() || it->is_null()) return def;
  if (!it->is_string()) lowbit::detail::fail(std::string("'") + key + "' is not a string");
  return it->template get<std::string>();
}

// compressed-tensors tensors of `module` -> lowbit layer of shape [rows, cols]. `weights` and
// `acts` are the module's config-group args (acts null: none), `format` its format.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedLinear ct_decode_layer(const SafetensorsModel& st, const std::string& module, std::int64_t rows,
                                       std::int64_t cols, const std::string& format,
                                       const deferred_t<Deferred, nlohmann::json>& weights,
                                       const deferred_t<Deferred, nlohmann::json>& acts, const std::string& who_in) {
  const std::string who = who_in + "layer " + module + ": ";
  auto bad = [&](const std::string& what) -> void { lowbit::detail::fail(who + what); };
  if (!weights.is_object()) bad("its config group has no \"weights\" args");
  const auto num = [&](const deferred_t<Deferred, nlohmann::json>& a, const char* key, std::int64_t def) -> std::int64_t {
    const auto it = a.find(key);
    if (it == a.end() || it->is_null()) return def;
    if (!it->is_number_integer()) bad(std::string("quantization args '") + key + "' is not an integer");
    return it->template get<std::int64_t>();
  };
  std::string type, strategy;
  try {
    type = ct_json_str<Deferred>(weights, "type", "int");
    strategy = ct_json_str<Deferred>(weights, "strategy", "");
  } catch (const lowbit::error& e) {
    bad(std::string("weights args: ") + e.what());
  }
  const std::int64_t bits = num(weights, "num_bits", 8);
  const bool symmetric = weights.value("symmetric", true);
  if (weights.contains("dynamic") && !(weights["dynamic"].is_boolean() && !weights["dynamic"].template get<bool>()))
    bad("dynamic weight quantization is not supported");
  if (weights.contains("actorder") && !weights["actorder"].is_null() && weights["actorder"] != false)
    bad("activation ordering (actorder / weight_g_idx) is not supported");
  if (st.find(module + ".weight_g_idx") != nullptr) bad("weight_g_idx (activation ordering) is not supported");
  deferred_t<Deferred, QuantizedLinear> ql;
  QuantizedMatrix& q = ql.weight;
  q.name = module;
  q.rows = rows;
  q.cols = cols;
  QuantSpec& s = q.spec;
  s.symmetric = symmetric;
  // Strategy -> grouping.
  std::int64_t G = 1;
  if (strategy == "tensor") {
    s.gran = granularity::per_tensor;
    q.group_size = cols;
  } else if (strategy == "channel") {
    s.gran = granularity::per_channel;
    q.group_size = cols;
  } else if (strategy == "group" || strategy == "tensor_group") {
    const std::int64_t g = num(weights, "group_size", -1);
    if (g <= 0 || g > (1 << 20)) bad("group strategy without a valid group_size");
    if (cols % g != 0) bad("group_size " + std::to_string(g) + " does not divide the " + std::to_string(cols) + " columns");
    s.gran = granularity::per_group;
    s.group_size = static_cast<int>(g);
    q.group_size = g;
    G = cols / g;
  } else {
    bad("weight strategy '" + strategy + "' is not supported (tensor, channel, group)");
  }
  q.groups_per_row = G;
  const std::vector<std::int64_t> sshape = s.gran == granularity::per_tensor ? std::vector<std::int64_t>{1}
                                                                                : std::vector<std::int64_t>{rows, G};
  const std::size_t n_groups = static_cast<std::size_t>(rows * G);
  auto fill_scales = [&](const std::vector<float>& v) {
    q.scales = s.gran == granularity::per_tensor ? std::vector<float>(n_groups, v.at(0)) : v;
  };
  if (format == "float-quantized" || format == "int-quantized" || format == "naive-quantized") {
    const bool fp8 = type == "float";
    if (bits != 8 || (type != "float" && type != "int")) bad("num_bits " + std::to_string(bits) + " type '" + type + "' is not stored as " + format);
    if (fp8 && !symmetric) bad("asymmetric FP8 is not supported");
    s.format = fp8 ? element_format::float8_e4m3fn : element_format::int8;
    const TensorView& w = ct_need(st, module + ".weight", who);
    ct_expect(w, fp8 ? tensor_dtype::f8_e4m3 : tensor_dtype::i8, {rows, cols}, who);
    q.row_stride = cols;
    q.codes.assign(reinterpret_cast<const std::uint8_t*>(w.data), reinterpret_cast<const std::uint8_t*>(w.data) + w.nbytes);
    for (std::size_t i = 0; i < q.codes.size(); ++i) {
      const std::uint8_t b = q.codes[i];
      if (fp8 && (b & 0x7F) == 0x7F) bad("tensor " + w.name + " holds an FP8 NaN at index " + std::to_string(i));
      if (!fp8 && symmetric && b == 0x80)
        bad("tensor " + w.name + " holds int8 -128 at index " + std::to_string(i) + " (lowbit's symmetric int8 is -127..127)");
      if (!fp8 && !symmetric) q.codes[i] = static_cast<std::uint8_t>(b ^ 0x80u);
    }
    fill_scales(ct_scales(ct_need(st, module + ".weight_scale", who), sshape, s.scale_storage, who));
    if (!symmetric) {
      const TensorView& z = ct_need(st, module + ".weight_zero_point", who);
      ct_expect(z, tensor_dtype::i8, sshape, who);
      const auto* zb = reinterpret_cast<const std::uint8_t*>(z.data);
      q.zeros.resize(n_groups);
      for (std::size_t i = 0; i < n_groups; ++i) q.zeros[i] = static_cast<std::uint8_t>(zb[s.gran == granularity::per_tensor ? 0 : i] ^ 0x80u);
    } else if (st.find(module + ".weight_zero_point") != nullptr) {
      const TensorView& z = *st.find(module + ".weight_zero_point");
      for (std::size_t i = 0; i < z.nbytes; ++i)
        if (z.data[i] != std::byte{0}) bad("tensor " + z.name + " is not zero in a symmetric scheme");
    }
  } else if (format == "pack-quantized") {
    if (bits != 4 || type != "int") bad("pack-quantized with num_bits " + std::to_string(bits) + " type '" + type + "' (lowbit reads int4)");
    if (s.gran == granularity::per_tensor) bad("per-tensor int4 is not supported");
    s.format = element_format::int4;
    const std::int64_t words = (cols + 7) / 8;
    const TensorView& w = ct_need(st, module + ".weight_packed", who);
    ct_expect(w, tensor_dtype::i32, {rows, words}, who);
    const TensorView& shp = ct_need(st, module + ".weight_shape", who);
    if ((shp.dtype != tensor_dtype::i32 && shp.dtype != tensor_dtype::i64) || shp.shape != std::vector<std::int64_t>{2})
      bad("tensor " + shp.name + " must be I32 or I64 of shape [2]");
    std::int64_t dims[2];
    for (int i = 0; i < 2; ++i) {
      if (shp.dtype == tensor_dtype::i32) {
        std::int32_t v;
        std::memcpy(&v, shp.data + 4 * i, 4);
        dims[i] = v;
      } else {
        std::memcpy(&dims[i], shp.data + 8 * i, 8);
      }
    }
    if (dims[0] != rows || dims[1] != cols)
      bad("tensor " + shp.name + " says [" + std::to_string(dims[0]) + ", " + std::to_string(dims[1]) +
          "], the model needs [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    q.row_stride = (cols + 1) / 2;
    q.codes.assign(static_cast<std::size_t>(rows * q.row_stride), 0);
    const std::uint32_t flip = symmetric ? 8u : 0u;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) {
        std::uint32_t word;
        std::memcpy(&word, w.data + 4 * (r * words + c / 8), 4);
        const std::uint32_t v = ((word >> (4 * (c % 8))) & 15u) ^ flip;
        set_nibble(q.codes.data() + r * q.row_stride, static_cast<std::size_t>(c), static_cast<std::uint8_t>(v));
      }
    fill_scales(ct_scales(ct_need(st, module + ".weight_scale", who), sshape, s.scale_storage, who));
    if (!symmetric) {
      const TensorView& z = ct_need(st, module + ".weight_zero_point", who);
      const std::int64_t zrows = (rows + 7) / 8;
      ct_expect(z, tensor_dtype::i32, {zrows, G}, who);
      q.zeros.resize(n_groups);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < G; ++j) {
          std::uint32_t word;
          std::memcpy(&word, z.data + 4 * ((r / 8) * G + j), 4);
          q.zeros[static_cast<std::size_t>(r * G + j)] = static_cast<std::uint8_t>((word >> (4 * (r % 8))) & 15u);
        }
    }
  } else if (format == "nvfp4-pack-quantized") {
    if (bits != 4 || type != "float" || s.gran != granularity::per_group || q.group_size != 16)
      bad("nvfp4-pack-quantized needs 4-bit float weights in groups of 16");
    s.format = element_format::float4_e2m1fn;
    s.constraint = scale_constraint::nvfp4;
    s.scale_storage = scale_dtype::f32;
    if (cols % 2 != 0) bad("NVFP4 needs an even number of columns");
    const TensorView& w = ct_need(st, module + ".weight_packed", who);
    ct_expect(w, tensor_dtype::u8, {rows, cols / 2}, who);
    q.row_stride = cols / 2;
    q.codes.assign(reinterpret_cast<const std::uint8_t*>(w.data), reinterpret_cast<const std::uint8_t*>(w.data) + w.nbytes);
    const TensorView& sc = ct_need(st, module + ".weight_scale", who);
    ct_expect(sc, tensor_dtype::f8_e4m3, {rows, G}, who);
    const TensorView& gs = ct_need(st, module + ".weight_global_scale", who);
    ct_expect(gs, tensor_dtype::f32, {1}, who);
    float g;
    std::memcpy(&g, gs.data, 4);
    if (!std::isfinite(g) || !(g > 0.0f)) bad("tensor " + gs.name + " is not a positive finite scale");
    q.tensor_scale = g;
    q.scale_codes.assign(reinterpret_cast<const std::uint8_t*>(sc.data), reinterpret_cast<const std::uint8_t*>(sc.data) + sc.nbytes);
    q.scales.resize(n_groups);
    for (std::size_t i = 0; i < n_groups; ++i) {
      if ((q.scale_codes[i] & 0x80) != 0 || q.scale_codes[i] == 0x7F)
        bad("tensor " + sc.name + " holds a negative or NaN scale at index " + std::to_string(i));
      q.scales[i] = float8_e4m3fn::from_bits(q.scale_codes[i]).to_float() / g;
    }
  } else if (format == "mxfp4-pack-quantized") {
    if (bits != 4 || type != "float" || s.gran != granularity::per_group || q.group_size != 32)
      bad("mxfp4-pack-quantized needs 4-bit float weights in groups of 32");
    s = mx_spec(element_format::float4_e2m1fn);
    const TensorView& w = ct_need(st, module + ".weight_packed", who);
    ct_expect(w, tensor_dtype::u8, {rows, cols / 2}, who);
    q.row_stride = cols / 2;
    q.codes.assign(reinterpret_cast<const std::uint8_t*>(w.data), reinterpret_cast<const std::uint8_t*>(w.data) + w.nbytes);
    const TensorView& sc = ct_need(st, module + ".weight_scale", who);
    ct_expect(sc, tensor_dtype::u8, {rows, G}, who);
    q.scale_codes.assign(reinterpret_cast<const std::uint8_t*>(sc.data), reinterpret_cast<const std::uint8_t*>(sc.data) + sc.nbytes);
    q.scales.resize(n_groups);
    for (std::size_t i = 0; i < n_groups; ++i) {
      if (q.scale_codes[i] == 255) bad("tensor " + sc.name + " holds the E8M0 NaN code 255 at index " + std::to_string(i));
      q.scales[i] = std::ldexp(1.0f, int(q.scale_codes[i]) - 127);
    }
  } else {
    bad("format '" + format + "' is not supported (float-quantized, int-quantized, pack-quantized, nvfp4-pack-quantized, "
        "mxfp4-pack-quantized)");
  }
  // Activations.
  if (!acts.is_null()) {
    if (!acts.is_object()) bad("input_activations is not an object");
    std::string at, as;
    try {
      at = ct_json_str<Deferred>(acts, "type", "int");
      as = ct_json_str<Deferred>(acts, "strategy", "");
    } catch (const lowbit::error& e) {
      bad(std::string("input_activations: ") + e.what());
    }
    const bool dyn = acts.contains("dynamic") && acts["dynamic"] == true;
    if (num(acts, "num_bits", 8) != 8 || !dyn || as != "token" || !acts.value("symmetric", true))
      bad("input_activations other than dynamic symmetric 8-bit per-token are not supported");
    if (at == "int") ql.activations = ActivationQuant{act_format::int8, 0};
    else if (at == "float") ql.activations = ActivationQuant{act_format::float8_e4m3fn, 0};
    else bad("input_activations type '" + at + "'");
  }
  ql.recipe = "compressed-tensors " + format;
  return ql;
}

}  // namespace detail

}  // namespace lowbit::model
