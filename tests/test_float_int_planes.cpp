// The one-token integer path of w4a8_fp4 (float_uses_int_planes; x86/avx512_float.hpp,
// avx512_direct_block_int_planes): E4M3 activations times 2^9 as three signed-byte planes,
// E2M1 weights times 2 biased to unsigned bytes, VPDPBUSD per group. Its parts are checked
// exactly: the digits, the planes and their group sums against a plain recomputation, and the
// kernel's output bit for bit against the exact sum where every group total is exact in fp32
// (power-of-two scales). The tolerance checks over the shape menu are in
// test_float_bf16_pairs.cpp, with the other one-token paths.
#include <catch2/catch.hpp>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <random>
#include <tuple>
#include <vector>

#include "lowbit/formats/nibbles.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/kernels/float_family.hpp"
#include "test_gemm_support.hpp"

namespace test_float_int_planes_cpp {

using namespace lowbit;
using namespace lowbit::detail;

namespace {

struct restore_one_token_path {
  ~restore_one_token_path() { one_token_path_override().store(one_token_path::automatic); }
};

}  // namespace

TEST_CASE("float int planes: balanced digits rebuild every E4M3 value times 2^9", "[float_kernels]") {
  // Every integer of the range, not only the E4M3 ones: the digit rule is plain arithmetic.
  const std::int32_t top = 448 * 512;
  for (std::int32_t v = -top; v <= top; ++v) {
    std::int32_t d[4];
    int_plane_digits(v, d);
    if (!(d[0] + 256 * d[1] + 65536 * d[2] == v && d[0] >= -128 && d[0] <= 127 && d[1] >= -128 && d[1] <= 127 &&
          d[2] >= -4 && d[2] <= 4 && d[3] == 0))
      FAIL("v " << v << " -> " << d[0] << ", " << d[1] << ", " << d[2] << ", " << d[3]);
  }
  // Up to 2^30 (W4A16's fixed point): four digits, the top one in [-64, 64].
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::int32_t> any(-(1 << 30), 1 << 30);
  for (int i = 0; i < 200000; ++i) {
    const std::int32_t v = i < 2 ? (i ? 1 << 30 : -(1 << 30)) : any(rng);
    std::int32_t d[4];
    int_plane_digits(v, d);
    const std::int64_t back = d[0] + 256LL * d[1] + 65536LL * d[2] + 16777216LL * d[3];
    if (!(back == v && d[0] >= -128 && d[0] <= 127 && d[1] >= -128 && d[1] <= 127 && d[2] >= -128 && d[2] <= 127 &&
          d[3] >= -64 && d[3] <= 64))
      FAIL("v " << v << " -> " << d[0] << ", " << d[1] << ", " << d[2] << ", " << d[3]);
  }
  // Every finite E4M3 value times 2^9 is an integer of that range (the planes' input).
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    const double v = static_cast<double>(float8_e4m3fn::decode_table[static_cast<std::size_t>(c)]) * 512.0;
    CHECK(v == std::trunc(v));
    CHECK(std::fabs(v) <= top);
  }
  CHECK(float8_e4m3fn::decode_table[0x01] * 512.0f == 1.0f);  // the smallest subnormal, 2^-9
}

TEST_CASE("float int planes: the planes and their group sums", "[float_kernels]") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const auto& [k, group] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {4, 4}, {40, 8}, {172, 172}, {4099, 4099}, {4099, 128}, {300, 12}, {2060, 1028}}) {
    INFO("K " << k << " group " << group);
    float_workspace ws;
    ws.cols = k;
    ws.group_size = group;
    ws.groups = (k + group - 1) / group;
    const std::int64_t quads = k / 4;
    make_int_planes(ws, float_code::e2m1, true);
    const std::int64_t spans = ws.groups * ws.spans_per_group;
    // Spans: each group cut every float_int_planes_span k-rows from its start.
    const std::int64_t gs = group;  // (a lambda may not capture a structured binding in C++17)
    const auto span_of = [&](std::int64_t i) { return i / gs * ws.spans_per_group + i % gs / float_int_planes_span; };
    std::fill(ws.x_planes.begin(), ws.x_planes.end(), std::int8_t{99});  // left from another call
    std::fill(ws.plane_sums.begin(), ws.plane_sums.end(), 12345);
    std::fill(ws.plane_count.begin(), ws.plane_count.end(), std::uint8_t{9});
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(k));
    std::vector<float> x(static_cast<std::size_t>(k));
    for (std::int64_t i = 0; i < k; ++i) {
      int v = byte(rng);
      if ((v & 0x7F) == 0x7F) v ^= 1;
      // Every third span has small values only (plane 2 all zero).
      if (span_of(i) % 3 == 1) v &= 0xB7;  // exponent field below 8: |a| < 2
      codes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
      x[static_cast<std::size_t>(i)] = float8_e4m3fn::decode_table[static_cast<std::size_t>(v)];
    }
    prepare_int_planes(x.data(), ws);
    std::vector<std::int64_t> sums(static_cast<std::size_t>(4 * spans), 0);
    std::vector<int> count(static_cast<std::size_t>(spans), 1);  // 1 + the highest non-zero plane
    for (std::int64_t i = 0; i < 4 * quads; ++i) {
      const std::int64_t g = span_of(i);
      std::int64_t v = 0;
      for (int p = 0; p < 4; ++p) {
        const std::int32_t d = ws.x_planes[static_cast<std::size_t>(p * 4 * quads + i)];
        v += d * (std::int64_t{1} << (8 * p));
        sums[static_cast<std::size_t>(4 * g + p)] += 12 * d;
        if (d != 0) count[static_cast<std::size_t>(g)] = std::max(count[static_cast<std::size_t>(g)], p + 1);
        if (p == 3) REQUIRE(d == 0);
      }
      if (static_cast<double>(v) != static_cast<double>(x[static_cast<std::size_t>(i)]) * 512.0)
        FAIL("k-row " << i << " code " << int{codes[static_cast<std::size_t>(i)]});
    }
    for (std::size_t j = 0; j < sums.size(); ++j) CHECK(ws.plane_sums[j] == sums[j]);
    CHECK(ws.fix_k.empty());  // E4M3 values are exact
    for (float u : ws.plane_unit) CHECK(u == (u == 0.0f ? 0.0f : 1.0f / 1024));  // 0: a span with no step
    for (std::size_t g = 0; g < count.size(); ++g) CHECK(int{ws.plane_count[g]} == count[g]);
    // Both plane counts occur in the groups above (all groups have 3 when there is only one).
    if (spans >= 3) {
      CHECK(std::count(count.begin(), count.end(), 2) > 0);
      CHECK(std::count(count.begin(), count.end(), 3) > 0);
    }
  }
}

TEST_CASE("float int planes: fp32 activations as fixed point per span, plus exact fixes", "[float_kernels]") {
  // Normal values with outliers, zeros, a span of tiny values (1e-30: the exponent clamp),
  // one of huge ones (1e30), an all-zero span, and values spread over 40 binades.
  std::mt19937 rng(17);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_int_distribution<int> binade(-20, 20);
  int fixes = 0, rows = 0;
  for (const auto& [k, group] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {4, 4}, {300, 12}, {2060, 1028}, {4099, 128}, {4099, 4099}}) {
    INFO("K " << k << " group " << group);
    float_workspace ws;
    ws.cols = k;
    ws.group_size = group;
    ws.groups = (k + group - 1) / group;
    make_int_planes(ws, float_code::int4_signed, false);
    const std::int64_t n = k / 4 * 4;
    const std::int64_t gs = group;  // (a lambda may not capture a structured binding in C++17)
    const auto span_of = [&](std::int64_t i) { return i / gs * ws.spans_per_group + i % gs / float_int_planes_span; };
    std::vector<float> x(static_cast<std::size_t>(k));
    for (std::int64_t i = 0; i < k; ++i) {
      float v = d(rng) * (i % 23 == 4 ? 30.0f : 1.0f);
      const std::int64_t s = span_of(i) % 6;
      if (s == 1) v *= 1e-30f;
      if (s == 2) v *= 1e30f;
      if (s == 3) v = 0.0f;
      if (s == 4) v = std::ldexp(v, binade(rng));
      if (i % 11 == 7) v = 0.0f;
      x[static_cast<std::size_t>(i)] = v;
    }
    prepare_int_planes(x.data(), ws);
    std::vector<double> fix(static_cast<std::size_t>(k), 0.0);
    std::vector<bool> fixed(static_cast<std::size_t>(k), false);
    for (std::size_t span = 0; span + 1 < ws.fix_begin.size(); ++span)
      for (std::int32_t i = ws.fix_begin[span]; i < ws.fix_begin[span + 1]; ++i) {
        const std::int64_t kk = ws.fix_k[static_cast<std::size_t>(i)];
        REQUIRE(span_of(kk) == static_cast<std::int64_t>(span));  // listed under its span
        REQUIRE(!fixed[static_cast<std::size_t>(kk)]);
        fixed[static_cast<std::size_t>(kk)] = true;
        fix[static_cast<std::size_t>(kk)] = ws.fix_r[static_cast<std::size_t>(i)];
      }
    REQUIRE(ws.fix_begin.back() == static_cast<std::int32_t>(ws.fix_k.size()));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::size_t at = static_cast<std::size_t>(i);
      const std::int64_t span = span_of(i);
      double v = 0.0;
      for (int p = 0; p < 4; ++p) v += std::ldexp(static_cast<double>(ws.x_planes[static_cast<std::size_t>(p * n) + at]), 8 * p);
      REQUIRE(std::fabs(v) <= std::ldexp(1.0, 30));
      // unit = 2^-e here (m = 1): the planes' value, exact in double.
      const double held = v * static_cast<double>(ws.plane_unit[static_cast<std::size_t>(span)]);
      const double xi = x[at];
      if (fixed[at]) {
        if (held + fix[at] != xi) FAIL("k-row " << i << ": " << held << " + " << fix[at] << " != " << xi);
      } else if (!(std::fabs(held - xi) <= std::ldexp(std::fabs(xi), -17))) {
        FAIL("k-row " << i << ": " << held << " for " << xi);
      }
      if (span % 6 == 0 || span % 6 == 5) {  // the plain spans
        fixes += fixed[at] ? 1 : 0;
        ++rows;
      }
    }
  }
  // In the plain spans (normal values with 30x outliers) only activations below 2^-14 of the
  // span's largest need a fix: well under 1% (the tiny spans, clamped, fix nearly all).
  INFO(fixes << " fixes in " << rows << " plain k-rows");
  CHECK(fixes > 0);
  CHECK(fixes < rows / 100);
}

TEST_CASE("float int planes: 16-bit activations take three planes, fp32 ones four", "[float_kernels]") {
  // Spans of bf16 values, of fp16 values, of fp32 values, and bf16 spans holding one, then
  // five (in their first 128 k-rows), values of 2^-20 of their largest (bf16 values that small
  // are no integers three planes down: fixes), cut into spans of 128 and, per channel, of 512
  // k-rows.
  std::mt19937 rng(41);
  std::normal_distribution<float> d(0.0f, 1.0f);
  int fp32_spans = 0, fp32_narrow = 0;
  for (const std::int64_t group : {std::int64_t{128}, std::int64_t{4096}}) {
    INFO("group " << group);
    const std::int64_t k = 4096;
    float_workspace ws;
    ws.cols = k;
    ws.group_size = group;
    ws.groups = k / group;
    make_int_planes(ws, float_code::int4_signed, false);
    const std::int64_t span_len = std::min<std::int64_t>(group, float_int_planes_span);
    const auto kind_of = [&](std::int64_t span) { return span % 5; };  // 0 bf16, 1 fp16, 2 fp32, 3/4 bf16 + tiny
    std::vector<float> x(static_cast<std::size_t>(k));
    for (std::int64_t i = 0; i < k; ++i) {
      const std::int64_t span = i / span_len, at = i % span_len;
      float v = d(rng) * (at == 9 ? 8.0f : 1.0f);
      switch (kind_of(span)) {
        case 1: v = static_cast<float>(Eigen::half(v)); break;
        case 2: break;
        case 3: v = static_cast<float>(Eigen::bfloat16(at == 20 ? std::ldexp(v, -20) : v)); break;
        case 4: v = static_cast<float>(Eigen::bfloat16(at < 128 && at % 24 == 20 ? std::ldexp(v, -20) : v)); break;
        default: v = static_cast<float>(Eigen::bfloat16(v)); break;
      }
      x[static_cast<std::size_t>(i)] = v;
    }
    for (const bool vector : {false, true}) {
#if LOWBIT_HAVE_X86_SIMD
      if (vector && !tier_supported(isa_tier::avx512, host_cpu_features())) continue;
#else
      if (vector) continue;
#endif
      INFO((vector ? "AVX-512" : "scalar") << " prepare");
      prepare_int_planes(x.data(), ws, vector);
      for (std::int64_t span = 0; span < k / span_len; ++span) {
        INFO("span " << span << " kind " << kind_of(span));
        const std::int64_t fixes = ws.fix_begin[static_cast<std::size_t>(span) + 1] - ws.fix_begin[static_cast<std::size_t>(span)];
        // Three planes where they list at most one fix per 32 k-rows: the bf16 and fp16 spans,
        // and the bf16 one with one tiny value; not five tiny values in 128 k-rows (a span of
        // 512 holds them: three planes), and seldom fp32 values (a fix in about 20 rows).
        const int count = ws.plane_count[static_cast<std::size_t>(span)];
        const std::int64_t tiny = kind_of(span) == 3 ? 1 : kind_of(span) == 4 ? 5 : 0;
        if (kind_of(span) == 2) {
          fp32_spans += 1;
          fp32_narrow += count == 3;
        } else {
          CHECK(count == (kind_of(span) != 4 || span_len == 512 ? 3 : 4));
        }
        if (count == 3) {
          CHECK(fixes >= tiny);
          CHECK(fixes <= span_len / 32);
        }
        // Every k-row held within 2^-17 of itself, or exactly with its fix, either way.
        for (std::int64_t i = span * span_len; i < (span + 1) * span_len; ++i) {
          double v = 0.0;
          for (int p = 0; p < 4; ++p) v += std::ldexp(static_cast<double>(ws.x_planes[static_cast<std::size_t>(p * k + i)]), 8 * p);
          double held = v * static_cast<double>(ws.plane_unit[static_cast<std::size_t>(span)]);
          for (std::int32_t f = ws.fix_begin[static_cast<std::size_t>(span)]; f < ws.fix_begin[static_cast<std::size_t>(span) + 1]; ++f)
            if (ws.fix_k[static_cast<std::size_t>(f)] == i) held += ws.fix_r[static_cast<std::size_t>(f)];
          const double xi = x[static_cast<std::size_t>(i)];
          if (!(std::fabs(held - xi) <= std::ldexp(std::fabs(xi), -17))) FAIL("k-row " << i << ": " << held << " for " << xi);
        }
      }
    }
  }
  INFO(fp32_narrow << " of " << fp32_spans << " fp32 spans on three planes");
  CHECK(fp32_narrow * 5 < fp32_spans);
}

#if LOWBIT_HAVE_X86_SIMD
TEST_CASE("float int planes: prepare's AVX-512 span loop is the scalar one, bit for bit", "[float_kernels]") {
  if (!tier_supported(isa_tier::avx512, host_cpu_features())) {
    WARN("no AVX-512 on this CPU: the vector prepare is not run here");
    return;
  }
  // fp32 activations (fixes included) and E4M3 values; spans of 4 to 512 k-rows whose length
  // mod 16 (the vector loop's masked tail) is each of 0, 4, 8 and 12 (spans hold whole 4-row
  // steps), tiny, huge and zero spans, ties at .5 after scaling.
  std::mt19937 rng(29);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_int_distribution<int> binade(-30, 30), byte(0, 255);
  int fixes = 0, narrow = 0;
  for (const bool exact : {false, true})
    for (const auto& [k, group] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {4, 4}, {20, 20}, {300, 12}, {2060, 1028}, {4099, 128}, {4099, 4099}, {1000, 44}, {777, 36},
             {240, 24}}) {
      INFO("K " << k << " group " << group << (exact ? " E4M3" : " fp32"));
      std::vector<float> x(static_cast<std::size_t>(k));
      for (std::int64_t i = 0; i < k; ++i) {
        float v;
        if (exact) {
          int c = byte(rng);
          if ((c & 0x7F) == 0x7F) c ^= 1;
          v = float8_e4m3fn::decode_table[static_cast<std::size_t>(c)];
        } else {
          v = std::ldexp(d(rng), binade(rng) / 3);
          const std::int64_t s = i / 40 % 7;
          if (s == 1) v *= 1e-30f;
          if (s == 2) v *= 1e30f;
          if (s == 3) v = 0.0f;
          if (s == 4) v = std::ldexp(std::round(v * 8.0f) + 0.5f, -3);  // ties once scaled
          if (s == 5) v = static_cast<float>(Eigen::bfloat16(d(rng)));  // spans on three planes
          if (i % 13 == 5) v = -v;
        }
        x[static_cast<std::size_t>(i)] = v;
      }
      float_workspace a, b;
      for (float_workspace* ws : {&a, &b}) {
        ws->cols = k;
        ws->group_size = group;
        ws->groups = (k + group - 1) / group;
        make_int_planes(*ws, exact ? float_code::e2m1 : float_code::int4_signed, exact);
      }
      prepare_int_planes(x.data(), a, false);
      prepare_int_planes(x.data(), b, true);
      CHECK(a.x_planes == b.x_planes);
      CHECK(a.plane_sums == b.plane_sums);
      CHECK(a.plane_count == b.plane_count);
      CHECK(a.plane_unit == b.plane_unit);
      CHECK(a.fix_begin == b.fix_begin);
      CHECK(a.fix_k == b.fix_k);
      CHECK(a.fix_r == b.fix_r);
      fixes += static_cast<int>(a.fix_k.size());
      if (!exact) narrow += static_cast<int>(std::count(a.plane_count.begin(), a.plane_count.end(), 3));
    }
  CHECK(fixes > 0);  // the fix lists were compared, not only found empty
  CHECK(narrow > 0);  // and fp32-path spans on three planes (the narrowing test's count) too
}

TEST_CASE("float int planes: one token is the exact sum where fp32 can hold it", "[float_kernels]") {
  if (!(tier_supported(isa_tier::avx512, host_cpu_features()) && avx512_int_planes_runs(host_cpu_features()))) {
    WARN("no AVX512-VNNI and -VBMI on this CPU: the integer planes are not run here");
    return;
  }
  restore_one_token_path restore;
  one_token_path_override().store(one_token_path::int_planes);
  // Power-of-two group scales: then every step of the kernel after its exact integer span
  // sums is an fp32 operation on dyadic values, exact while the result fits in 24 bits. The
  // test follows the kernel's steps in double (span sums converted to fp32 and summed per
  // group, times the scale, summed over the groups; per channel with K % 4 = 3 the last
  // k-rows through the fp32 per-row step) and, where every step is exact, requires the output
  // to be fp32(total) * s_a bit for bit. The fp32 paths need not give that: they round their
  // running sums inside a group.
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_int_distribution<int> pow2(-3, 2);
  const auto exact_in_float = [](double v) { return static_cast<double>(static_cast<float>(v)) == v; };
  int checked = 0, columns = 0;
  for (const auto& [n, k, group] : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>{
           {45, 64, 64}, {70, 256, 128}, {33, 4099, 4099}, {64, 2048, 1024}, {32, 40, 20}, {40, 4096, 128}}) {
    INFO("N " << n << " K " << k << " group " << group);
    QuantizedMatrix q = lowbit::test::random_float_family_matrix(element_format::float4_e2m1fn, true, n, k, group,
                                                                 static_cast<std::uint32_t>(k + n));
    for (float& s : q.scales) s = std::ldexp(1.0f, pow2(rng));
    const float_packed w = pack_float(q, gemm_scheme::w4a8_fp4, isa_tier::avx512);
    RowMatrixXf x(1, k);
    for (std::int64_t c = 0; c < k; ++c) x(0, c) = d(rng) * (c % 29 == 3 ? 40.0f : 1.0f);
    const float_workspace ws = prepare_float(w, x);
    REQUIRE(!ws.x_planes.empty());
    RowMatrixXf y(1, n);
    run_float(w, ws, y, 0, n);
    const float s_a = ws.token_scales[0];
    const std::uint8_t* codes = ws.codes.data();
    const std::int64_t whole = k / 4 * 4;
    for (std::int64_t j = 0; j < n; ++j) {
      ++columns;
      const auto term = [&](std::int64_t c) {  // a * w, exact in double
        return static_cast<double>(float8_e4m3fn::decode_table[codes[c]]) *
               static_cast<double>(weight_code_value_reference(q, j, c));
      };
      double total = 0.0;
      bool exact = true;
      for (std::int64_t g0 = 0; g0 < k; g0 += group) {
        const std::int64_t g1 = std::min(k, g0 + group), q1 = std::min(g1, whole);
        const double s = q.scales[static_cast<std::size_t>(j * q.groups_per_row + g0 / group)];
        double r = 0.0;
        for (std::int64_t s0 = g0; s0 < q1; s0 += float_int_planes_span) {
          double span = 0.0;
          for (std::int64_t c = s0; c < std::min(q1, s0 + float_int_planes_span); ++c) span += term(c);
          r += span;
          exact = exact && exact_in_float(span) && exact_in_float(r);
        }
        total += r * s;
        exact = exact && exact_in_float(total);
        double rest = 0.0;
        for (std::int64_t c = q1; c < g1; ++c) {
          rest += term(c);
          exact = exact && exact_in_float(rest);
        }
        total += rest * s;
        exact = exact && exact_in_float(total);
      }
      if (!exact) continue;
      const float expect = static_cast<float>(total) * s_a;
      if (y(0, j) != expect) FAIL("column " << j << ": " << y(0, j) << " against " << expect);
      ++checked;
    }
  }
  INFO(checked << " of " << columns << " columns had exact partial sums");
  CHECK(checked >= columns * 3 / 4);
}
#endif  // LOWBIT_HAVE_X86_SIMD

}  // namespace test_float_int_planes_cpp
