// Packing of the integer-activation family: layout checks, the int32 overflow limits at the
// largest K lowbit claims, and the M2 fallback.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <string>

#include "lowbit/gemm.hpp"
#include "lowbit/kernels/reference.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_pack_int_cpp {

using namespace lowbit;
using lowbit::test::int_matrix_recipe;

TEST_CASE("packed weights made for another tier's layout are rejected", "[pack]") {
  int_matrix_recipe r;
  r.rows = 40;
  r.cols = 64;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  const RowMatrixXf x = lowbit::test::random_activations(2, 64, 4);
  RowMatrixXf y(2, 40);
  const std::vector<isa_tier> tiers = supported_isa_tiers();
  for (isa_tier a : tiers)
    for (isa_tier b : tiers) {
      if (a == b) continue;
      PackOptions po;
      po.tier = a;
      const PackedWeights w = pack(q, po);
      const detail::int_workspace ws = detail::prepare_int(w.int_weights(), x, isa_tier::scalar);
      INFO("packed for " << to_string(a) << ", run on " << to_string(b));
      CHECK_THROWS_WITH(detail::run_int(w.int_weights(), ws, y, 0, 40, b), Catch::Contains("pack them again"));
    }
  // A packed record whose tier field no longer matches its tile width is caught by gemm().
  PackedWeights w = pack(q);
  if (w.tier() == isa_tier::avx512) {
    w.int_weights_mutable().tier = isa_tier::scalar;
    CHECK_THROWS_WITH(gemm(x, w, y), Catch::Contains("layout"));
  }
  // So is one whose group padding no longer matches its sub-tier (AMX pads groups to 64).
  PackedWeights wk = pack(q);
  wk.int_weights_mutable().k_align = 32;
  CHECK_THROWS_WITH(gemm(x, wk, y), Catch::Contains("pack them again"));
  // Sub-tiers of one tier whose layouts differ (neondot / neoni8mm, avx512vnni / amx): weights
  // relabelled with the other sub-tier are rejected, never read in the wrong byte order.
  for (isa_subtier a : supported_isa_subtiers())
    for (isa_subtier b : supported_isa_subtiers()) {
      if (tier_of(a) != tier_of(b) || (detail::int_layout_of(a) == detail::int_layout_of(b) &&
                                        detail::int_k_align(a, 8) == detail::int_k_align(b, 8)))
        continue;
      PackOptions po;
      po.subtier = a;
      PackedWeights wr = pack(q, po);
      wr.int_weights_mutable().subtier = b;
      INFO("packed for " << to_string(a) << ", relabelled " << to_string(b));
      CHECK_THROWS_WITH(gemm(x, wr, y), Catch::Contains("pack them again"));
    }
  // A layout field that no longer matches the sub-tier is caught on every CPU.
  PackedWeights wl = pack(q);
  wl.int_weights_mutable().layout = wl.subtier() == isa_subtier::neoni8mm ? detail::int_layout::dot4
                                                                          : detail::int_layout::mmla;
  CHECK_THROWS_WITH(gemm(x, wl, y), Catch::Contains("pack them again"));
  // Unaligned column ranges are rejected rather than computed wrongly.
  const PackedWeights ws_pack = pack(q);
  const detail::int_workspace ws = detail::prepare_int(ws_pack.int_weights(), x, ws_pack.tier());
  CHECK_THROWS_AS(detail::run_int(ws_pack.int_weights(), ws, y, 3, 40, ws_pack.tier()), lowbit::error);
}

TEST_CASE("packing pads K per group and N to the tile", "[pack]") {
  int_matrix_recipe r;
  r.rows = 33;
  r.cols = 70;  // groups 32, 32, 6
  r.group = 32;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  for (isa_subtier tier : supported_isa_subtiers()) {
    INFO("sub-tier " << to_string(tier));
    PackOptions po;
    po.subtier = tier;
    const PackedWeights w = pack(q, po);
    const detail::int_packed& p = w.int_weights();
    CHECK(p.groups == 3);
    // AMX: one tile's K per group; I8MM: a pair of int4 k steps (16 inputs).
    CHECK(p.k_align == (tier == isa_subtier::amx ? 64 : tier == isa_subtier::neoni8mm ? 16 : 8));
    CHECK(p.layout == (tier == isa_subtier::neoni8mm ? detail::int_layout::mmla : detail::int_layout::dot4));
    CHECK(p.group_padded == detail::round_up(32, p.k_align));
    CHECK(p.last_group_padded == detail::round_up(6, p.k_align));
    CHECK(p.k_padded == 2 * p.group_padded + p.last_group_padded);
    CHECK(p.n_tiles == (33 + p.nt - 1) / p.nt);
    CHECK(w.bytes() == static_cast<std::size_t>(p.n_tiles * p.tile_bytes));
    const PackedWeights copy = w;  // deep copy
    CHECK(copy.int_weights().data.data() != p.data.data());
    CHECK(std::equal(p.data.data(), p.data.data() + p.data.size(), copy.int_weights().data.data()));
  }
}

TEST_CASE("w4a8_int4_m2 is exact at the largest K it claims", "[pack][overflow]") {
  // K = 16384, shift spread 7: K * 1016 * 2^7 = 2,130,706,432 < 2^31. Worst-case signs: every
  // weight -8, every activation +127, all but one group at the largest shift.
  const std::int64_t k = 16384, n = 3;
  int_matrix_recipe r;
  r.rows = n;
  r.cols = k;
  r.group = 128;
  r.m2 = true;
  r.code_lo = r.code_hi = -8;
  QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t g = 0; g < q.groups_per_row; ++g) {
      const std::size_t at = static_cast<std::size_t>(i * q.groups_per_row + g);
      q.shifts[at] = static_cast<std::int8_t>(g == 5 ? -7 : 0);
      q.scales[at] = std::ldexp(q.row_scales[static_cast<std::size_t>(i)], q.shifts[at]);
    }
  CHECK(detail::m2_shift_spread(q) == 7);
  const RowMatrixXf x = RowMatrixXf::Constant(1, k, 0.25f);  // all codes 127
  const auto qa = detail::reference_quantize_int8(x);
  const std::int64_t sum = detail::reference_m2_row_sum(q, qa, 0, 0);
  CHECK(sum == -1016LL * (128LL + 127LL * 128LL * 128LL));  // -2,114,190,336
  CHECK(sum < -(std::int64_t{1} << 30));
  const RowMatrixXf want = detail::reference_gemm_int(q, qa, gemm_scheme::w4a8_int4_m2);
  for (isa_subtier tier : supported_isa_subtiers()) {
    PackOptions po;
    po.subtier = tier;
    const PackedWeights w = pack(q, po);
    REQUIRE(w.scheme() == gemm_scheme::w4a8_int4_m2);
    RowMatrixXf y(1, n);
    gemm(x, w, y);
    INFO("tier " << to_string(tier));
    CHECK((y.array() == want.array()).all());
  }
  // One more group at spread 7 would pass the limit: auto falls back to the per-group kernel,
  // forcing M2 is an error.
  int_matrix_recipe r2 = r;
  r2.cols = k + 256;
  r2.max_spread = 7;
  QuantizedMatrix big = lowbit::test::make_int_matrix(r2);
  big.shifts[1] = -7;
  big.scales[1] = std::ldexp(big.row_scales[0], -7);
  CHECK(pack(big).scheme() == gemm_scheme::w4a8_int4);
  PackOptions force;
  force.scheme = gemm_scheme::w4a8_int4_m2;
  CHECK_THROWS_WITH(pack(big, force), Catch::Contains("overflow"));
}

TEST_CASE("w8a8_int8 per channel is exact at its largest K", "[pack][overflow]") {
  // One group of 133,144 inputs: 133,144 * 127 * 127 = 2,147,479,576 <= 2^31 - 1.
  const std::int64_t k = detail::int8_group_k_limit;
  int_matrix_recipe r;
  r.rows = 2;
  r.cols = k;
  r.format = element_format::int8;
  r.group = 0;
  r.code_lo = r.code_hi = 127;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  const RowMatrixXf x = RowMatrixXf::Constant(1, k, 3.0f);
  const auto qa = detail::reference_quantize_int8(x);
  CHECK(detail::reference_group_sum(q, qa, 0, 0, 0) == 2147479576LL);
  const RowMatrixXf want = detail::reference_gemm_int(q, qa, gemm_scheme::w8a8_int8);
  for (isa_subtier tier : supported_isa_subtiers()) {
    PackOptions po;
    po.subtier = tier;
    RowMatrixXf y(1, 2);
    gemm(x, pack(q, po), y);
    INFO("tier " << to_string(tier));
    CHECK((y.array() == want.array()).all());
  }
  int_matrix_recipe r2 = r;
  r2.cols = k + 1;
  CHECK_THROWS_WITH(pack(lowbit::test::make_int_matrix(r2)), Catch::Contains("133144"));
}

TEST_CASE("every sub-tier can be forced: LOWBIT_ISA names and PackOptions::subtier", "[pack][dispatch]") {
  const cpu_features& f = host_cpu_features();
  std::string ran;
  for (isa_subtier s : supported_isa_subtiers()) ran += " " + std::string(to_string(s));
  WARN("integer-kernel sub-tiers this CPU runs (each is tested bit-exact):" << ran);
  const char* old = std::getenv("LOWBIT_ISA");
  const std::string saved = old ? old : "";
  for (isa_subtier s : all_isa_subtiers) {
    INFO("LOWBIT_ISA=" << to_string(s));
    ::setenv("LOWBIT_ISA", std::string(to_string(s)).c_str(), 1);
    if (detail::subtier_supported(s, f))
      CHECK(detail::subtier_from_env(f) == s);
    else
      CHECK_THROWS_WITH(detail::subtier_from_env(f), Catch::Contains("does not support"));
  }
  ::setenv("LOWBIT_ISA", "avx512", 1);  // the family: its best vector sub-tier, never AMX
  if (detail::tier_supported(isa_tier::avx512, f))
    CHECK(detail::subtier_from_env(f) == (f.avx512vnni ? isa_subtier::avx512vnni : isa_subtier::avx512bw));
  ::setenv("LOWBIT_ISA", "avx513", 1);
  CHECK_THROWS_WITH(detail::subtier_from_env(f), Catch::Contains("unknown tier"));
  if (old) ::setenv("LOWBIT_ISA", saved.c_str(), 1);
  else ::unsetenv("LOWBIT_ISA");

  int_matrix_recipe r;
  r.rows = 20;
  r.cols = 64;
  const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
  for (isa_subtier s : supported_isa_subtiers()) {
    PackOptions po;
    po.subtier = s;
    const PackedWeights w = pack(q, po);
    CHECK(w.subtier() == s);
    CHECK(w.tier() == tier_of(s));
    CHECK(std::string(selected_kernel(w)) == "w4a8_int4_g32_" + std::string(to_string(s)));
    po.tier = s == isa_subtier::scalar ? isa_tier::neon : isa_tier::scalar;  // a sub-tier of another tier
    CHECK_THROWS_WITH(pack(q, po), Catch::Contains("not part of"));
  }
  for (isa_subtier s : all_isa_subtiers)
    if (!detail::subtier_supported(s, f)) {
      PackOptions po;
      po.subtier = s;
      CHECK_THROWS_WITH(pack(q, po), Catch::Contains("cannot run"));
    }
}

TEST_CASE("automatic selection prefers I8MM, then SDOT, on AArch64 feature sets", "[pack][dispatch]") {
  cpu_features f;  // a made-up AArch64 CPU: the choice is a pure function of the features
  f.neon = true;
  CHECK(detail::best_subtier(f) == isa_subtier::neon);
  f.dotprod = true;
  CHECK(detail::best_subtier(f) == isa_subtier::neondot);
  f.i8mm = true;  // Graviton 3/4, Apple M2+
  CHECK(detail::best_subtier(f) == isa_subtier::neoni8mm);
  CHECK(tier_of(isa_subtier::neoni8mm) == isa_tier::neon);
  CHECK(detail::subtier_supported(isa_subtier::neoni8mm, f));
  f.i8mm = false;
  CHECK_FALSE(detail::subtier_supported(isa_subtier::neoni8mm, f));
}

TEST_CASE("automatic selection on x86 feature sets: VNNI over VPMADDUBSW, AMX only with the OS's permission",
          "[pack][dispatch]") {
  cpu_features f;  // made-up x86 CPUs: the choice is a pure function of the features
  CHECK(detail::best_subtier(f) == isa_subtier::scalar);
  f.avx2 = f.fma = f.f16c = true;
  CHECK(detail::best_subtier(f) == isa_subtier::avx2);
  f.avxvnni = true;
  CHECK(detail::best_subtier(f) == isa_subtier::avx2vnni);
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = true;
  CHECK(detail::best_subtier(f) == isa_subtier::avx512bw);
  f.avx512dq = false;  // every one of the tier's features is needed
  CHECK(detail::best_subtier(f) == isa_subtier::avx2vnni);
  f.avx512dq = true;
  f.avx512vnni = true;
  CHECK(detail::best_subtier(f) == isa_subtier::avx512vnni);
  f.amx_tile = f.amx_int8 = f.amx_bf16 = true;  // tiles in the CPU, but the kernel has not granted them
  CHECK_FALSE(detail::subtier_supported(isa_subtier::amx, f));
  CHECK(detail::best_subtier(f) == isa_subtier::avx512vnni);
  f.amx_permitted = true;
  CHECK(detail::subtier_supported(isa_subtier::amx, f));
  CHECK(detail::best_subtier(f) == isa_subtier::amx);
  CHECK(detail::best_vector_subtier(isa_tier::avx512, f) == isa_subtier::avx512vnni);  // LOWBIT_ISA=avx512: never tiles
  f.avx512vnni = false;  // AMX's few-token path runs on VPDPBUSD
  CHECK_FALSE(detail::subtier_supported(isa_subtier::amx, f));
  CHECK(detail::best_subtier(f) == isa_subtier::avx512bw);
  // Names and tiers come from one table; values outside it are never supported.
  for (isa_subtier s : all_isa_subtiers) CHECK(to_string(s) != "unknown");
  CHECK(to_string(static_cast<isa_subtier>(99)) == "unknown");
  CHECK_FALSE(detail::subtier_supported(static_cast<isa_subtier>(99), f));
}

// The documented byte order of the I8MM (`mmla`) layout, checked on every CPU: pack_int itself
// does not need the CPU to run the kernel. Group 12 (not a multiple of the k step) takes the
// element path, group 32 the word path; 45 rows leave padding columns in the last tile.
TEST_CASE("the I8MM layout interleaves two weight rows in 8-byte k chunks", "[pack]") {
  for (const bool int4 : {true, false})
    for (const std::int64_t group : {std::int64_t{12}, std::int64_t{32}, std::int64_t{24}}) {
      int_matrix_recipe r;
      r.format = int4 ? element_format::int4 : element_format::int8;
      r.rows = 45;
      r.cols = 70;  // a ragged last group for every group size
      r.group = group;
      r.code_lo = int4 ? -8 : -127;
      r.code_hi = int4 ? 7 : 127;
      const QuantizedMatrix q = lowbit::test::make_int_matrix(r);
      const gemm_scheme scheme = int4 ? gemm_scheme::w4a8_int4 : gemm_scheme::w8a8_int8;
      const detail::int_packed p = detail::pack_int(q, scheme, isa_subtier::neoni8mm);
      INFO((int4 ? "int4" : "int8") << " group " << group);
      REQUIRE(p.layout == detail::int_layout::mmla);
      REQUIRE(p.nt == 16);
      const std::int64_t chunk = 2 * p.kstep;  // inputs per 8-byte column chunk
      CHECK(p.k_align == chunk);
      const auto code = [&](std::int64_t n, std::int64_t k) {  // signed code, 0 past N or K
        if (n >= q.rows || k >= q.cols) return 0;
        const std::uint8_t* row = q.codes.data() + n * q.row_stride;
        if (!int4) return static_cast<int>(static_cast<std::int8_t>(row[k]));
        const int nib = get_nibble(row, static_cast<std::size_t>(k));
        return (nib & 8) ? nib - 16 : nib;
      };
      std::int64_t bad = 0;
      for (std::int64_t t = 0; t < p.n_tiles; ++t) {
        const std::uint8_t* out = p.tile(t);
        for (std::int64_t g = 0; g < p.groups; ++g) {
          const std::int64_t k0 = g * p.group_size, len = p.group_len(g);
          for (std::int64_t ch = 0; ch < p.padded_len(g) / chunk; ++ch, out += 128) {
            for (int c = 0; c < 16; ++c) {
              const std::int64_t n = t * 16 + c;
              const auto biased = [&](std::int64_t kk) {
                return (kk < len ? code(n, k0 + kk) : 0) + p.weight_bias;
              };
              for (int j = 0; j < 8; ++j) {
                const std::int64_t kk = ch * chunk + j;
                const int want = int4 ? (biased(kk) | biased(kk + 8) << 4) : biased(kk);
                bad += out[c * 8 + j] != want;
              }
            }
          }
          for (int c = 0; c < 16; ++c) {  // the group scales follow, one fp32 per column
            float s = 0.0f;
            std::memcpy(&s, out + c * 4, 4);
            const std::int64_t n = t * 16 + c;
            bad += s != (n < q.rows ? q.scales[static_cast<std::size_t>(n * q.groups_per_row + g)] : 0.0f);
          }
          out += 64;
        }
        CHECK(out == p.tile(t) + p.tile_bytes);
      }
      CHECK(bad == 0);
    }
}
}  // namespace test_pack_int_cpp
