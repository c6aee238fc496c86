#pragma once
// lowbit quantized checkpoints: safetensors files in which each quantized weight is a set of
// plain tensors (<base>.qweight codes, <base>.scales / .zeros / .row_scales / .shifts /
// .scale_codes / .tensor_scale) and its scheme is a JSON string in __metadata__ under
// "lowbit.layer.<base>". Tensors that were not quantized are stored unchanged under their
// own names. The full format is docs/checkpoint-format.md.
//
// Only the compact scale form is stored (what QuantizedMatrix::storage_bits() counts); the
// loader rebuilds QuantizedMatrix::scales from it, and the writer checks that this rebuild
// reproduces the in-memory scales bit for bit before it writes anything.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/formats/float8.hpp"
#include "lowbit/io/detail/scheme_json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/safetensors_writer.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit {

// Version 2 added QuantizedLinear parts (<base>.bias, <base>.smooth, the layer's recipe and
// activation format, io/linear_checkpoint.hpp): a version-1 reader would ignore them and
// compute a different layer, so it must refuse such files. Version-1 files read unchanged.
constexpr int checkpoint_format_version = 2;
constexpr int checkpoint_oldest_readable_version = 1;
constexpr const char* checkpoint_format_key = "lowbit.format_version";
constexpr const char* checkpoint_layer_prefix = "lowbit.layer.";
// A single-file checkpoint carries its source model's config.json text under this key, so it
// loads with nothing beside it (a directory checkpoint has the config.json file instead).
constexpr const char* checkpoint_config_key = "lowbit.config";

// "a.b.weight" -> "a.b": the prefix of a quantized layer's tensors.
inline std::string checkpoint_base_name(const std::string& weight_name) {
  const std::string suffix = ".weight";
  if (weight_name.size() > suffix.size() &&
      weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return weight_name.substr(0, weight_name.size() - suffix.size());
  return weight_name;
}

namespace detail {

// The safetensors dtype of a layer's codes.
inline tensor_dtype code_dtype(const QuantSpec& s) noexcept {
  switch (s.format) {
    case element_format::int8: return s.symmetric ? tensor_dtype::i8 : tensor_dtype::u8;
    case element_format::float8_e4m3fn: return tensor_dtype::f8_e4m3;
    case element_format::float8_e5m2: return tensor_dtype::f8_e5m2;
    default: return tensor_dtype::u8;  // nibble-packed 4-bit codes, 6-bit codes in bytes
  }
}
inline tensor_dtype storage_dtype(scale_dtype d) noexcept {
  return d == scale_dtype::f16 ? tensor_dtype::f16 : d == scale_dtype::bf16 ? tensor_dtype::bf16 : tensor_dtype::f32;
}

// Real scales in their storage precision; exact because they were rounded to it already.
inline std::vector<std::uint8_t> encode_real_scales(const std::vector<float>& v, scale_dtype d) {
  std::vector<std::uint8_t> out(v.size() * dtype_size(storage_dtype(d)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (d == scale_dtype::f32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      const std::uint16_t h = d == scale_dtype::f16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

// QuantizedMatrix::scales from the compact fields (the formulas of quantized_matrix.hpp).
inline std::vector<float> rebuild_scales(const QuantizedMatrix& q, const std::vector<float>& real_scales) {
  const std::size_t n = static_cast<std::size_t>(q.rows * q.groups_per_row);
  std::vector<float> s(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t row = i / static_cast<std::size_t>(q.groups_per_row);
    switch (q.spec.constraint) {
      case scale_constraint::none: s[i] = real_scales[i]; break;
      case scale_constraint::pow2_m1: s[i] = std::ldexp(1.0f, q.shifts[i]); break;
      case scale_constraint::pow2_m2: s[i] = std::ldexp(q.row_scales[row], q.shifts[i]); break;
      case scale_constraint::mx: s[i] = std::ldexp(1.0f, int(q.scale_codes[i]) - 127); break;
      case scale_constraint::nvfp4:
        s[i] = float8_e4m3fn::from_bits(q.scale_codes[i]).to_float() / q.tensor_scale;
        break;
    }
  }
  return s;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) noexcept {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

inline std::int64_t expected_row_stride(const QuantSpec& s, std::int64_t cols) noexcept {
  return is_nibble_format(s.format) ? (cols + 1) / 2 : cols;
}

// Calls report(i) for the first byte i of codes[0, n) where byte_bad holds (report throws).
// word_bad(x) is nonzero when one of the 8 bytes of x is bad (exactly when, never a false
// negative): chunks of 8-byte words are OR-reduced without branches, at memory speed, and
// only a chunk with a hit is searched byte by byte.
template <class WordBad, class ByteBad, class Report>
void scan_chunks(const std::uint8_t* codes, std::size_t n, WordBad word_bad, ByteBad byte_bad, Report report) {
  constexpr std::size_t chunk = 4096;
  for (std::size_t c0 = 0; c0 < n; c0 += chunk) {
    const std::size_t c1 = std::min(n, c0 + chunk);
    std::uint64_t any = 0;
    std::size_t i = c0;
    for (; i + 8 <= c1; i += 8) {
      std::uint64_t x;
      std::memcpy(&x, codes + i, 8);
      any |= word_bad(x);
    }
    for (; i < c1; ++i) any |= byte_bad(codes[i]) ? 1u : 0u;
    if (any == 0) continue;
    for (i = c0; i < c1; ++i)
      if (byte_bad(codes[i])) report(i);
  }
}
// Nonzero when some 4-bit (8-bit) lane of v is zero: the classic borrow test, exact as a
// yes/no answer.
inline std::uint64_t has_zero_nibble(std::uint64_t v) noexcept {
  return (v - 0x1111111111111111ull) & ~v & 0x8888888888888888ull;
}
inline std::uint64_t has_zero_byte(std::uint64_t v) noexcept {
  return (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
}

// The values a reader accepts in a rebuilt QuantizedMatrix (a corrupt or hostile file would
// otherwise compute NaN, or codes the quantizer never emits):
//  - every effective scale finite and >= 0 (q4_0 scales carry a sign, so any finite value);
//    nvfp4's tensor scale finite and > 0;
//  - symmetric integers without q4_0: no code -(qmax + 1) (int8 0x80, int4 nibble 8), which
//    the scheme leaves unused so that negation is exact;
//  - asymmetric integers: zero points <= qmax; 6-bit formats: codes in the low 6 bits.
// `codes`: the matrix's rows * row_stride code bytes (q.codes, or the tensor in a memory map).
// The code checks run branch-free over chunks (they vectorize: one pass at memory speed) and
// look for the offending byte only in a chunk that has one.
inline void check_matrix_values(const QuantizedMatrix& q, const std::uint8_t* codes,
                                const std::function<void(const std::string&)>& bad) {
  const std::size_t n_codes = static_cast<std::size_t>(q.rows * q.row_stride);
  const bool signed_scales = q.spec.int_rule == int_scale_rule::q4_0 && is_integer_format(q.spec.format);
  for (std::size_t i = 0; i < q.scales.size(); ++i) {
    const float s = q.scales[i];
    if (!std::isfinite(s) || (!signed_scales && s < 0.0f))
      bad("scale " + std::to_string(s) + " of row " + std::to_string(i / std::size_t(q.groups_per_row)) + ", group " +
          std::to_string(i % std::size_t(q.groups_per_row)) + " is " + (std::isfinite(s) ? "negative" : "not finite"));
  }
  if (q.spec.constraint == scale_constraint::nvfp4 && !(std::isfinite(q.tensor_scale) && q.tensor_scale > 0.0f))
    bad("tensor_scale " + std::to_string(q.tensor_scale) + " is not a finite positive number");
  const int bits = element_bits(q.spec.format);
  if (is_integer_format(q.spec.format) && q.spec.symmetric && q.spec.int_rule != int_scale_rule::q4_0) {
    const auto report = [&](std::size_t byte) {
      bad("code -" + std::to_string(1 << (bits - 1)) + " at row " + std::to_string(byte / std::size_t(q.row_stride)) +
          " is outside the symmetric range [-" + std::to_string((1 << (bits - 1)) - 1) + ", " +
          std::to_string((1 << (bits - 1)) - 1) + "] of this scheme");
    };
    if (bits == 8)
      scan_chunks(codes, n_codes, [](std::uint64_t x) { return has_zero_byte(x ^ 0x8080808080808080ull); },
                  [](std::uint8_t c) { return c == 0x80; }, report);
    else
      scan_chunks(codes, n_codes, [](std::uint64_t x) { return has_zero_nibble(x ^ 0x8888888888888888ull); },
                  [](std::uint8_t c) { return (c & 0xF) == 0x8 || (c >> 4) == 0x8; }, report);
  }
  if (!q.spec.symmetric) {
    const int qmax = (1 << bits) - 1;
    for (std::size_t i = 0; i < q.zeros.size(); ++i)
      if (q.zeros[i] > qmax) bad("zero point " + std::to_string(q.zeros[i]) + " exceeds " + std::to_string(qmax));
  }
  if (bits == 6)
    scan_chunks(codes, n_codes, [](std::uint64_t x) { return x & 0xC0C0C0C0C0C0C0C0ull; },
                [](std::uint8_t c) { return c > 0x3F; }, [&](std::size_t i) {
      bad("6-bit code at row " + std::to_string(i / std::size_t(q.row_stride)) + " uses more than 6 bits");
    });
}
inline void check_matrix_values(const QuantizedMatrix& q, const std::function<void(const std::string&)>& bad) {
  check_matrix_values(q, q.codes.data(), bad);
}

}  // namespace detail

// Marks a writer's file as a lowbit checkpoint (format version in __metadata__).
// finish() then reads the whole file back with the checkpoint reader's rules before it is
// committed (detail::validate_checkpoint), so a file that would not load is never written.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void validate_checkpoint_before_commit(SafetensorsWriter& w);
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void begin_checkpoint(SafetensorsWriter& w) {
  w.set_metadata(checkpoint_format_key, std::to_string(checkpoint_format_version));
  w.set_metadata("format", "lowbit");  // what `safetensors` metadata readers show first
  validate_checkpoint_before_commit(w);
}

// Appends one quantized weight as <base>.* tensors plus its scheme in the metadata.
// `extra` (a JSON object) is merged into the layer's metadata entry (e.g. the activation
// format, the recipe, the error measured while quantizing).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void write_quantized_matrix(SafetensorsWriter& w, const std::string& weight_name, const QuantizedMatrix& q,
                                   const deferred_t<Deferred, nlohmann::json>& extra = nlohmann::json::object()) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const std::string base = checkpoint_base_name(weight_name);
  const auto bad = [&](const std::string& what) { detail::fail("checkpoint layer '" + weight_name + "': " + what); };
  const std::size_t n = static_cast<std::size_t>(q.rows * q.groups_per_row);
  // Storing offsets needs a tensor, a spec field and a format-version bump (a reader of
  // today's format would silently drop them), so they are refused rather than lost.
  if (q.spec.zero == zero_form::float_offset)
    bad("float-offset groups (a GGUF Q4_K import) have no lowbit checkpoint form yet");
  if (q.rows <= 0 || q.cols <= 0 || q.group_size <= 0 || q.groups_per_row != (q.cols + q.group_size - 1) / q.group_size)
    bad("inconsistent shape fields");
  if (q.row_stride != detail::expected_row_stride(q.spec, q.cols) ||
      q.codes.size() != static_cast<std::size_t>(q.rows * q.row_stride) || q.scales.size() != n)
    bad("codes or scales have the wrong size");
  const scale_constraint c = q.spec.constraint;
  if ((!q.spec.symmetric && q.zeros.size() != n) ||
      ((c == scale_constraint::pow2_m1 || c == scale_constraint::pow2_m2) && q.shifts.size() != n) ||
      (c == scale_constraint::pow2_m2 && q.row_scales.size() != static_cast<std::size_t>(q.rows)) ||
      ((c == scale_constraint::mx || c == scale_constraint::nvfp4) && q.scale_codes.size() != n))
    bad("constraint data has the wrong size");
  if (!detail::same_bits(detail::rebuild_scales(q, q.scales), q.scales))
    bad("the compact scale fields do not reproduce the scales (QuantizedMatrix contract broken)");

  const std::vector<std::int64_t> grid{q.rows, q.groups_per_row};
  w.add(base + ".qweight", detail::code_dtype(q.spec), {q.rows, q.row_stride}, q.codes);
  if (c == scale_constraint::none)
    w.add(base + ".scales", detail::storage_dtype(q.spec.scale_storage), grid,
          detail::encode_real_scales(q.scales, q.spec.scale_storage));
  if (!q.spec.symmetric) w.add(base + ".zeros", tensor_dtype::u8, grid, q.zeros);
  if (c == scale_constraint::pow2_m2)
    w.add(base + ".row_scales", detail::storage_dtype(q.spec.scale_storage), {q.rows},
          detail::encode_real_scales(q.row_scales, q.spec.scale_storage));
  if (c == scale_constraint::pow2_m1 || c == scale_constraint::pow2_m2) w.add(base + ".shifts", tensor_dtype::i8, grid, q.shifts);
  if (c == scale_constraint::mx) w.add(base + ".scale_codes", tensor_dtype::u8, grid, q.scale_codes);
  if (c == scale_constraint::nvfp4) {
    w.add(base + ".scale_codes", tensor_dtype::f8_e4m3, grid, q.scale_codes);
    w.add(base + ".tensor_scale", tensor_dtype::f32, {1}, &q.tensor_scale, sizeof(float));
  }

  json_t layer = extra.is_object() ? extra : json_t::object();
  layer["weight"] = weight_name;
  layer["spec"] = detail::spec_to_json(q.spec);
  layer["shape"] = {q.rows, q.cols};
  layer["group_size"] = q.group_size;
  layer["groups_per_row"] = q.groups_per_row;
  layer["row_stride"] = q.row_stride;
  if (!layer.contains("bits_per_weight")) layer["bits_per_weight"] = q.bits_per_weight();  // a layer's own (LoRC...) wins
  w.set_metadata(checkpoint_layer_prefix + base, layer.dump());
}

// Whether a file carries the lowbit checkpoint metadata; throws for a newer format version.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline bool is_lowbit_checkpoint(const SafetensorsFile& f) {
  const auto it = f.metadata().find(checkpoint_format_key);
  if (it == f.metadata().end()) return false;
  for (int v = checkpoint_oldest_readable_version; v <= checkpoint_format_version; ++v)
    if (it->second == std::to_string(v)) return true;
  detail::fail(f.source() + ": lowbit checkpoint format version '" + it->second + "' is not supported (this build reads versions " +
               std::to_string(checkpoint_oldest_readable_version) + " to " + std::to_string(checkpoint_format_version) + ")");
}

// The base names of the quantized layers, in metadata order.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<std::string> checkpoint_layers(const SafetensorsFile& f) {
  std::vector<std::string> out;
  const std::string prefix = checkpoint_layer_prefix;
  for (const auto& [k, v] : f.metadata())
    if (k.compare(0, prefix.size(), prefix) == 0) out.push_back(k.substr(prefix.size()));
  return out;
}

// The layer's metadata entry, parsed.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline nlohmann::json checkpoint_layer_info(const SafetensorsFile& f, const std::string& base) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const auto it = f.metadata().find(checkpoint_layer_prefix + base);
  if (it == f.metadata().end()) detail::fail(f.source() + ": no quantized layer '" + base + "'");
  json_t j = json_t::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) detail::fail(f.source() + ": layer '" + base + "': scheme metadata is not a JSON object");
  return j;
}

namespace detail {
// load_quantized_matrix(); with `codes_in_file`, the codes are not copied: q.codes stays
// empty and *codes_in_file points at them in f's memory map (valid while f is).
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix load_quantized_matrix_impl(const SafetensorsFile& f, const std::string& base,
                                                  const std::uint8_t** codes_in_file) {
  using json_t = deferred_t<Deferred, nlohmann::json>;
  const json_t info = checkpoint_layer_info(f, base);
  const auto bad = [&](const std::string& what) { detail::fail(f.source() + ": layer '" + base + "': " + what); };
  QuantizedMatrix q;
  q.spec = detail::spec_from_json(detail::json_field(info, "spec", base), base);
  q.name = detail::json_string(info, "weight", base);
  const auto& shape = detail::json_field(info, "shape", base);
  if (!shape.is_array() || shape.size() != 2 || !shape[0].is_number_integer() || !shape[1].is_number_integer())
    bad("shape is not a pair of integers");
  q.rows = shape[0].template get<std::int64_t>();
  q.cols = shape[1].template get<std::int64_t>();
  if (q.rows <= 0 || q.cols <= 0 || q.rows > (1ll << 31) || q.cols > (1ll << 31)) bad("shape out of range");
  q.spec = normalized_spec(q.spec, base);  // rejects combinations that have no meaning
  q.group_size = q.spec.gran == granularity::per_group ? q.spec.group_size : q.cols;
  if (detail::json_int(info, "group_size", base) != q.group_size) bad("group_size does not match the scheme");
  q.groups_per_row = (q.cols + q.group_size - 1) / q.group_size;
  q.row_stride = detail::expected_row_stride(q.spec, q.cols);
  if (detail::json_int(info, "groups_per_row", base) != q.groups_per_row ||
      detail::json_int(info, "row_stride", base) != q.row_stride)
    bad("groups_per_row / row_stride do not match shape and group size");
  const std::vector<std::int64_t> grid{q.rows, q.groups_per_row};

  const auto tensor = [&](const char* suffix, tensor_dtype dtype, const std::vector<std::int64_t>& shp) -> const TensorView& {
    const TensorView* t = f.find(base + suffix);
    if (t == nullptr) bad(std::string("missing tensor ") + base + suffix);
    if (t->dtype != dtype || t->shape != shp)
      bad(std::string("tensor ") + base + suffix + " has dtype " + std::string(dtype_name(t->dtype)) +
          " or shape that does not match the scheme (expected " + std::string(dtype_name(dtype)) + ")");
    return *t;
  };
  const auto bytes = [](const TensorView& t, auto& out) {
    out.resize(t.nbytes / sizeof(out[0]));
    if (t.nbytes) std::memcpy(out.data(), t.data, t.nbytes);
  };
  const auto real = [&](const char* suffix, const std::vector<std::int64_t>& shp) {
    const TensorView& t = tensor(suffix, detail::storage_dtype(q.spec.scale_storage), shp);
    return t.to_float_vector();
  };

  const TensorView& qweight = tensor(".qweight", detail::code_dtype(q.spec), {q.rows, q.row_stride});
  const auto* codes = reinterpret_cast<const std::uint8_t*>(qweight.data);
  if (codes_in_file) {
    *codes_in_file = codes;
  } else {
    q.codes.assign(codes, codes + qweight.nbytes);  // one copy, no zero fill first
  }
  const scale_constraint c = q.spec.constraint;
  std::vector<float> real_scales;
  if (c == scale_constraint::none) real_scales = real(".scales", grid);
  if (!q.spec.symmetric) bytes(tensor(".zeros", tensor_dtype::u8, grid), q.zeros);
  if (c == scale_constraint::pow2_m2) q.row_scales = real(".row_scales", {q.rows});
  if (c == scale_constraint::pow2_m1 || c == scale_constraint::pow2_m2) bytes(tensor(".shifts", tensor_dtype::i8, grid), q.shifts);
  if (c == scale_constraint::mx) bytes(tensor(".scale_codes", tensor_dtype::u8, grid), q.scale_codes);
  if (c == scale_constraint::nvfp4) {
    bytes(tensor(".scale_codes", tensor_dtype::f8_e4m3, grid), q.scale_codes);
    std::memcpy(&q.tensor_scale, tensor(".tensor_scale", tensor_dtype::f32, {1}).data, sizeof(float));
  }
  q.scales = detail::rebuild_scales(q, real_scales);
  detail::check_matrix_values(q, codes, bad);
  return q;
}
}  // namespace detail

// Rebuilds the QuantizedMatrix of layer `base` (see checkpoint_layers()), checking every
// tensor's dtype and shape against the recorded scheme.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix load_quantized_matrix(const SafetensorsFile& f, const std::string& base) {
  return detail::load_quantized_matrix_impl(f, base, nullptr);
}
// The same, with the codes left in f's memory map (`codes`, rows * row_stride bytes, valid
// while f is) instead of copied into q.codes: for packing them straight into a kernel layout.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline QuantizedMatrix load_quantized_matrix_mapped(const SafetensorsFile& f, const std::string& base,
                                                    const std::uint8_t*& codes) {
  return detail::load_quantized_matrix_impl(f, base, &codes);
}

namespace detail {

// The bias (finite) and smoothing vector (finite, > 0) of a QuantizedLinear layer: one rule
// for the writer (write_quantized_linear refuses to write what the reader would reject) and
// the reader (load_quantized_linear).
inline void check_layer_vector(const float* v, std::int64_t n, bool positive, const std::string& tensor,
                               const std::function<void(const std::string&)>& bad) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) bad("tensor " + tensor + " contains NaN or Inf (element " + std::to_string(i) + ")");
    if (positive && !(v[i] > 0.0f)) bad("tensor " + tensor + ": smoothing factors must be positive (element " + std::to_string(i) + ")");
  }
}

// The layer's F32 [n] vector part `base + suffix` (bias, smooth), checked as above.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline std::vector<float> read_layer_vector(const SafetensorsFile& f, const std::string& base, const char* suffix,
                                            std::int64_t n, bool positive) {
  const auto bad = [&](const std::string& what) { fail(f.source() + ": layer '" + base + "': " + what); };
  const TensorView* t = f.find(base + suffix);
  if (t == nullptr) bad(std::string("missing tensor ") + base + suffix);
  if (t->dtype != tensor_dtype::f32 || t->shape != std::vector<std::int64_t>{n})
    bad(std::string("tensor ") + base + suffix + " must be F32 [" + std::to_string(n) + "], it is " +
        std::string(dtype_name(t->dtype)) + " " + std::to_string(t->shape.size()) + "-D");
  std::vector<float> v(static_cast<std::size_t>(n));
  std::memcpy(v.data(), t->data, static_cast<std::size_t>(n) * sizeof(float));  // views may be unaligned
  check_layer_vector(v.data(), n, positive, base + suffix, bad);
  return v;
}

// Whether the layer entry declares a bias / smoothing vector; a part present without its
// flag would be silently dropped by a reader, so it is refused.
struct layer_parts {
  bool bias = false, smooth = false;
};
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline layer_parts declared_layer_parts(const SafetensorsFile& f, const std::string& base, const deferred_t<Deferred, nlohmann::json>& info) {
  const auto bad = [&](const std::string& what) { fail(f.source() + ": layer '" + base + "': " + what); };
  const auto it = info.find("linear");
  const bool linear = it != info.end() && it->is_boolean() && it->template get<bool>();
  layer_parts p;
  p.bias = linear && json_bool(info, "bias", base);
  p.smooth = linear && info.contains("smoothing_alpha");
  if (!p.bias && f.find(base + ".bias") != nullptr) bad("tensor " + base + ".bias is not declared in the layer entry");
  if (!p.smooth && f.find(base + ".smooth") != nullptr) bad("tensor " + base + ".smooth is not declared in the layer entry");
  return p;
}

// Reads every layer of a finished checkpoint with the reader's rules (what
// SafetensorsWriter runs before it commits a file that begin_checkpoint() marked): every
// matrix part, the declared bias / smoothing vectors, no undeclared parts. LoRC factors are
// checked by their own reader (io/lorc_checkpoint.hpp) when layers are loaded.
template <class Deferred = void>  // see "Compile time" in docs/design.md
inline void validate_checkpoint(const SafetensorsFile& f) {
  if (!is_lowbit_checkpoint(f)) fail(f.source() + ": not a lowbit checkpoint (no " + std::string(checkpoint_format_key) + ")");
  for (const std::string& base : checkpoint_layers(f)) {
    const QuantizedMatrix q = load_quantized_matrix(f, base);
    const layer_parts p = declared_layer_parts(f, base, checkpoint_layer_info(f, base));
    if (p.bias) read_layer_vector(f, base, ".bias", q.rows, false);
    if (p.smooth) read_layer_vector(f, base, ".smooth", q.cols, true);
  }
}

}  // namespace detail

template <class Deferred>
inline void validate_checkpoint_before_commit(SafetensorsWriter& w) { w.set_validator(detail::validate_checkpoint<>); }

}  // namespace lowbit
