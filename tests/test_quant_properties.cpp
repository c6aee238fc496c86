// Property tests of the weight quantizers over every spec: nearest-code rounding (error within
// half a step inside the range), idempotence, zero maps to zero, group = K equals per-channel,
// power-of-two input scaling, M2 reconstruction, ragged groups, zero points, error ordering.
#include <catch2/catch.hpp>
#include <cmath>

#include "lowbit/quant.hpp"
#include "test_quant_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_quant_properties_cpp {

using namespace lowbit;
using lowbit_test::all_specs;
using lowbit_test::describe;
using lowbit_test::random_matrix;

namespace {
std::uint8_t code_at(const QuantizedMatrix& q, std::int64_t r, std::int64_t c) {
  const std::uint8_t* row = q.codes.data() + r * q.row_stride;
  return is_nibble_format(q.spec.format) ? get_nibble(row, std::size_t(c)) : row[c];
}
bool no_clip_rule(const QuantSpec& s) { return s.int_rule != int_scale_rule::amax_over_qmax_half; }
}  // namespace

TEST_CASE("codes are the nearest representable value of x / scale inside the range", "[quant]") {
  const RowMatrixXf w = random_matrix(6, 96, 21);
  for (const QuantSpec& spec : all_specs(32)) {
    if (!spec.symmetric) continue;  // checked below with the zero point
    INFO(describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    const auto& table = detail::code_values(q.spec.format, true);
    const int ncodes = element_bits(q.spec.format) == 8 ? 256 : 1 << element_bits(q.spec.format);
    const detail::scale_context ctx = detail::make_scale_context(q.spec, q.tensor_scale);
    float max_val = 0.0f;
    for (int c = 0; c < ncodes; ++c)
      if (std::isfinite(table[std::size_t(c)])) max_val = std::max(max_val, std::fabs(table[std::size_t(c)]));
    for (std::int64_t r = 0; r < q.rows; ++r)
      for (std::int64_t c = 0; c < q.cols; ++c) {
        const std::int64_t g = c / q.group_size;
        const detail::group_params p = detail::load_params(q, ctx, r, g);
        const float y = w(r, c) * p.inv;
        const float v = table[code_at(q, r, c)];
        if (std::fabs(y) > max_val) {
          REQUIRE(std::fabs(v) == max_val);  // saturated
          continue;
        }
        for (int k = 0; k < ncodes; ++k) {
          const float u = table[std::size_t(k)];
          if (!std::isfinite(u) || (q.spec.format == element_format::int4 && u == -8.0f &&
                                    q.spec.int_rule != int_scale_rule::q4_0) ||
              (q.spec.format == element_format::int8 && u == -128.0f && q.spec.int_rule != int_scale_rule::q4_0))
            continue;
          REQUIRE(std::fabs(y - v) <= std::fabs(y - u));
        }
      }
  }
}

TEST_CASE("asymmetric zero points are exact integers and zero stays zero", "[quant]") {
  RowMatrixXf w = random_matrix(5, 70, 22).cwiseAbs();  // all positive: zero point at 0
  w.row(1) = -w.row(1);                                 // all negative: zero point at qmax
  w(2, 10) = 0.0f;
  w(3, 0) = 0.0f;
  for (element_format f : {element_format::int4, element_format::int8}) {
    const QuantizedMatrix q = quantize(w, group_spec(f, 16, scale_constraint::none, false));
    const RowMatrixXf d = dequantize(q);
    const int qmax = f == element_format::int4 ? 15 : 255;
    for (std::size_t i = 0; i < q.zeros.size(); ++i) CHECK(int(q.zeros[i]) <= qmax);
    CHECK(d(2, 10) == 0.0f);
    CHECK(d(3, 0) == 0.0f);
    CHECK(q.zeros[0] == 0);
    CHECK(int(q.zeros[std::size_t(q.groups_per_row)]) == qmax);
    for (std::int64_t r = 0; r < 5; ++r)
      for (std::int64_t c = 0; c < 70; ++c)
        REQUIRE(std::fabs(d(r, c) - w(r, c)) <= 0.5f * q.scales[std::size_t(r * q.groups_per_row + c / 16)] * 1.0001f);
  }
}

TEST_CASE("quantizing the dequantized matrix is idempotent", "[quant]") {
  // Codes are identical whenever the refitted scales are. Scales rounded UP to a power of
  // two (M1, M2, MX with round_up_175) can legitimately halve on the second pass: when a
  // group's largest element rounds down to exactly half the format's range (E2M1: 3 of 6),
  // the new amax is exactly half; the codes then double and the values stay the same.
  const RowMatrixXf w = random_matrix(6, 80, 23);
  for (const QuantSpec& spec : all_specs(16)) {
    if (!no_clip_rule(spec)) continue;  // qmax+0.5 clips the extreme, so its amax moves
    INFO(describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    const RowMatrixXf d = dequantize(q);
    const QuantizedMatrix q2 = quantize(d, spec);
    if (spec.symmetric) {
      CHECK((dequantize(q2).array() == d.array()).all());
    } else {  // the refitted min-max scale can move by an ulp; codes and zero points may not
      CHECK(q2.codes == q.codes);
      CHECK(q2.zeros == q.zeros);
      CHECK((dequantize(q2) - d).cwiseAbs().maxCoeff() <= 1e-5f * d.cwiseAbs().maxCoeff());
    }
    for (std::int64_t r = 0; r < q.rows; ++r)
      for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
        const std::size_t i = std::size_t(r * q.groups_per_row + g);
        if (q2.scales[i] != q.scales[i]) continue;
        for (std::int64_t c = g * q.group_size; c < std::min(q.cols, (g + 1) * q.group_size); ++c)
          REQUIRE(code_at(q2, r, c) == code_at(q, r, c));
      }
  }
}

TEST_CASE("zero maps to zero and group = K equals per-channel", "[quant]") {
  RowMatrixXf w = random_matrix(4, 48, 24);
  for (std::int64_t c = 0; c < 48; c += 5) w(c % 4, c) = 0.0f;
  for (const QuantSpec& spec : all_specs(48)) {
    INFO(describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    const RowMatrixXf d = dequantize(q);
    for (std::int64_t c = 0; c < 48; c += 5) CHECK(d(c % 4, c) == 0.0f);
    if (spec.gran != granularity::per_group || spec.constraint == scale_constraint::mx ||
        spec.constraint == scale_constraint::nvfp4)
      continue;
    for (int g : {48, 100}) {
      QuantSpec ch = spec;
      ch.gran = granularity::per_channel;
      QuantSpec gs = spec;
      gs.group_size = g;
      const QuantizedMatrix a = quantize(w, ch), b = quantize(w, gs);
      CHECK(a.codes == b.codes);
      CHECK(a.scales == b.scales);
      CHECK(a.zeros == b.zeros);
      CHECK(a.shifts == b.shifts);
      CHECK(a.row_scales == b.row_scales);
    }
  }
}

TEST_CASE("scaling the input by 2^k shifts power-of-two scales by k and keeps the codes", "[quant]") {
  const RowMatrixXf w = random_matrix(5, 64, 25);
  for (const QuantSpec& spec : all_specs(16)) {
    const scale_constraint c = spec.constraint;
    const bool real_f32 = c == scale_constraint::none && spec.scale_storage == scale_dtype::f32;
    if (c == scale_constraint::nvfp4) continue;  // the E4M3 block scale is not a power of two
    if (spec.scale_storage == scale_dtype::f16) continue;  // f16 has subnormals and a low max
    INFO(describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    for (int k : {-7, -1, 3, 12}) {
      const QuantizedMatrix qk = quantize(w * std::ldexp(1.0f, k), spec);
      CHECK(qk.codes == q.codes);
      CHECK(qk.zeros == q.zeros);
      for (std::size_t i = 0; i < q.scales.size(); ++i) {
        if (c == scale_constraint::pow2_m1) CHECK(int(qk.shifts[i]) == int(q.shifts[i]) + k);
        if (c == scale_constraint::pow2_m2) CHECK(qk.shifts[i] == q.shifts[i]);
        if (c == scale_constraint::mx) CHECK(int(qk.scale_codes[i]) == int(q.scale_codes[i]) + k);
        if (c != scale_constraint::none || real_f32) CHECK(qk.scales[i] == std::ldexp(q.scales[i], k));
      }
    }
  }
}

TEST_CASE("M2: row scale times 2^shift reconstructs each group scale within the constraint", "[quant]") {
  RowMatrixXf w = random_matrix(6, 200, 26);
  w.block(2, 64, 1, 64) *= 1e-3f;  // a much quieter group
  for (element_format f : {element_format::float4_e2m1fn, element_format::int4, element_format::int8,
                           element_format::float8_e4m3fn}) {
    const QuantizedMatrix q = quantize(w, group_spec(f, 64, scale_constraint::pow2_m2));
    const float qmax = detail::element_qmax(f, true);
    for (std::int64_t r = 0; r < q.rows; ++r) {
      float max_raw = 0.0f;
      for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
        const std::size_t i = std::size_t(r * q.groups_per_row + g);
        const float raw = w.row(r).segment(g * 64, std::min<std::int64_t>(64, 200 - g * 64)).cwiseAbs().maxCoeff() / qmax;
        max_raw = std::max(max_raw, raw);
        CHECK(q.shifts[i] <= 0);
        CHECK(q.scales[i] == std::ldexp(q.row_scales[std::size_t(r)], q.shifts[i]));
        CHECK(q.scales[i] >= raw);         // never clips
        CHECK(q.scales[i] < 2.0f * raw);   // the smallest such power of two
      }
      CHECK(q.row_scales[std::size_t(r)] == max_raw);
    }
    CHECK(q.shifts[std::size_t(2 * q.groups_per_row + 1)] <= -9);
  }
}

TEST_CASE("ragged last groups quantize like a separate matrix of their own", "[quant]") {
  const RowMatrixXf w = random_matrix(3, 131, 27);
  for (const QuantSpec& spec : all_specs(64)) {
    if (spec.gran != granularity::per_group || spec.constraint == scale_constraint::pow2_m2 ||
        spec.constraint == scale_constraint::nvfp4)
      continue;  // row- and tensor-level scales couple the groups
    INFO(describe(spec));
    const QuantizedMatrix q = quantize(w, spec);
    const std::int64_t G = q.group_size, last = (131 - 1) / G * G;
    const RowMatrixXf tail = w.rightCols(131 - last);
    QuantSpec ts = spec;
    if (spec.constraint != scale_constraint::mx) ts.gran = granularity::per_channel;
    const QuantizedMatrix qt = quantize(tail, ts);
    for (std::int64_t r = 0; r < 3; ++r) {
      CHECK(q.scales[std::size_t(r * q.groups_per_row + q.groups_per_row - 1)] ==
            qt.scales[std::size_t(r * qt.groups_per_row)]);
      for (std::int64_t c = last; c < 131; ++c) CHECK(code_at(q, r, c) == code_at(qt, r, c - last));
    }
    if (is_nibble_format(spec.format))  // the unused high nibble of an odd row is zero
      for (std::int64_t r = 0; r < 3; ++r) CHECK((q.codes[std::size_t(r * q.row_stride + 65)] >> 4) == 0);
  }
}

TEST_CASE("error ordering: more bits and smaller groups are better", "[quant]") {
  const RowMatrixXf w = random_matrix(64, 512, 28, 0.02f);
  const auto sqnr = [&](const QuantSpec& s) { return error_stats(w, dequantize(quantize(w, s))).sqnr_db; };
  using ef = element_format;
  CHECK(sqnr(group_spec(ef::int8, 128)) > sqnr(group_spec(ef::int4, 128)) + 15.0);
  CHECK(sqnr(group_spec(ef::float8_e4m3fn, 128)) > sqnr(group_spec(ef::float6_e2m3fn, 128)));
  CHECK(sqnr(group_spec(ef::float6_e2m3fn, 128)) > sqnr(group_spec(ef::float4_e2m1fn, 128)));
  CHECK(sqnr(group_spec(ef::float6_e3m2fn, 128)) > sqnr(group_spec(ef::float4_e2m1fn, 128)));
  for (ef f : {ef::int4, ef::float4_e2m1fn}) {
    CHECK(sqnr(group_spec(f, 32)) > sqnr(group_spec(f, 128)));
    CHECK(sqnr(group_spec(f, 128)) > sqnr(channel_spec(f)));
    CHECK(sqnr(channel_spec(f)) > sqnr(tensor_spec(f)));
    // M2 loses less than M1 (ZeroQuant-FP), and both lose against real scales.
    CHECK(sqnr(group_spec(f, 128, scale_constraint::none)) > sqnr(group_spec(f, 128, scale_constraint::pow2_m2)));
    CHECK(sqnr(group_spec(f, 128, scale_constraint::pow2_m2)) > sqnr(group_spec(f, 128, scale_constraint::pow2_m1)));
    QuantSpec clip = group_spec(f, 128);
    clip.clip.enabled = true;
    CHECK(sqnr(clip) >= sqnr(group_spec(f, 128)));
  }
  CHECK(sqnr(group_spec(ef::int4, 128, scale_constraint::none, false)) > sqnr(group_spec(ef::int4, 128)));
}
}  // namespace test_quant_properties_cpp
