// The kernel registry (kernels/registry.hpp): one record per (scheme x sub-tier), no record
// shadowed by another, every sub-tier whose code the build has served for every scheme, and each
// record's layout numbers both what pack() produces and what its kernel needs.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "lowbit/gemm.hpp"
#include "test_gemm_support.hpp"

// One namespace per test file, so that any set of test files can be compiled as one
// unity translation unit (tests/CMakeLists.txt) without their file-local names clashing.
namespace test_kernel_registry_cpp {

using namespace lowbit;
using detail::kernel_record;

constexpr gemm_scheme registry_schemes[] = {gemm_scheme::w8a8_int8,  gemm_scheme::w8a8_fp8,   gemm_scheme::w4a8_int4,
                                            gemm_scheme::w4a8_int4_m2, gemm_scheme::w4a8_fp4, gemm_scheme::w4a16_int4,
                                            gemm_scheme::w4a16_fp4, gemm_scheme::w8a16_int8};

const std::vector<const kernel_record*>& registry_records() {
  static const std::vector<const kernel_record*> all = [] {
    std::vector<const kernel_record*> v;
    for (const kernel_record& r : detail::kernel_table<>::records) v.push_back(&r);
    return v;
  }();
  return all;
}

// A host that has exactly what sub-tier s needs.
cpu_features registry_host_for(isa_subtier s) {
  const detail::feature_mask m = detail::subtier_needs(s);
  const auto has = [&](detail::cpu_feature c) { return (m & detail::feature_bit(c)) != 0; };
  using c = detail::cpu_feature;
  cpu_features f;
  f.avx2 = has(c::avx2), f.fma = has(c::fma), f.f16c = has(c::f16c), f.avxvnni = has(c::avxvnni);
  f.avx512f = has(c::avx512f), f.avx512bw = has(c::avx512bw), f.avx512vl = has(c::avx512vl);
  f.avx512dq = has(c::avx512dq), f.avx512vnni = has(c::avx512vnni);
  f.amx_tile = has(c::amx_tile), f.amx_int8 = has(c::amx_int8), f.amx_permitted = has(c::amx_permitted);
  f.neon = has(c::neon), f.dotprod = has(c::dotprod), f.i8mm = has(c::i8mm);
  return f;
}

TEST_CASE("kernel registry: no record is a duplicate or shadowed by an earlier one", "[kernel_registry]") {
  const auto& all = registry_records();
  REQUIRE(!all.empty());
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::size_t j = i + 1; j < all.size(); ++j) {
      const kernel_record& a = *all[i];
      const kernel_record& b = *all[j];
      if (a.scheme != b.scheme) continue;
      INFO(to_string(a.scheme) << ": records " << i << " (" << a.suffix << ") and " << j << " (" << b.suffix << ")");
      CHECK(a.suffix != b.suffix);
      // Two records serving one sub-tier are only meaningful as preference and fallback: the
      // earlier must need strictly more, or the later one can never be selected.
      if (a.serves & b.serves)
        CHECK((detail::features_cover(a.needs, b.needs) && a.needs != b.needs));
    }
}

TEST_CASE("kernel registry: every scheme has a record for every sub-tier this build compiles", "[kernel_registry]") {
  detail::subtier_mask compiled = 0;
  for (const kernel_record* r : registry_records())
    if (r->run != nullptr) compiled |= r->serves;
  CHECK((compiled & detail::subtier_bit(isa_subtier::scalar)) != 0);
  for (isa_subtier s : all_isa_subtiers) {
    if (!(compiled & detail::subtier_bit(s))) continue;
    const cpu_features host = registry_host_for(s);
    for (gemm_scheme scheme : registry_schemes) {
      INFO(to_string(scheme) << " on " << to_string(s));
      const kernel_record& r = detail::select_kernel(scheme, s, host);
      CHECK(r.scheme == scheme);
      CHECK((r.serves & detail::subtier_bit(s)) != 0);
      CHECK(r.tier == tier_of(s));
      // A record never needs more than its sub-tier promises (else resolving that sub-tier
      // would not guarantee a kernel).
      CHECK(detail::features_cover(detail::subtier_needs(s), r.needs));
      CHECK((r.ops->family == detail::kernel_family::int_act) == is_int_activation_scheme(scheme));
      // find_kernel ignores the host: the selected record, or one preferred to it that needs
      // strictly more (the AMX-BF16 float records before the AVX-512 ones on sub-tier amx).
      const kernel_record* first = detail::find_kernel(scheme, s);
      REQUIRE(first != nullptr);
      CHECK((first == &r || (detail::features_cover(first->needs, r.needs) && first->needs != r.needs)));
    }
  }
  // The AMX-BF16 float records: a host with AMX-BF16 (and the AVX512-BF16 that comes with it)
  // gets them on sub-tier amx, named "amx"; one without gets the AVX-512 float records there.
  if (compiled & detail::subtier_bit(isa_subtier::amx)) {
    cpu_features full = registry_host_for(isa_subtier::amx);
    full.amx_bf16 = full.avx512bf16 = true;
    for (gemm_scheme scheme : registry_schemes) {
      if (is_int_activation_scheme(scheme)) continue;
      INFO(to_string(scheme));
      const kernel_record& amx = detail::select_kernel(scheme, isa_subtier::amx, full);
      CHECK(detail::float_record_is_amx(amx));
      CHECK(amx.suffix == "amx");
      CHECK(amx.serves == detail::subtier_bit(isa_subtier::amx));
      CHECK_FALSE(detail::float_record_is_amx(
          detail::select_kernel(scheme, isa_subtier::amx, registry_host_for(isa_subtier::amx))));
    }
  }
  // Layouts exist in every build (pack_int and the layout tests read them on any CPU).
  for (isa_subtier s : all_isa_subtiers)
    for (gemm_scheme scheme : registry_schemes) {
      INFO(to_string(scheme) << " on " << to_string(s));
      const kernel_record* r = detail::find_kernel(scheme, s);
      REQUIRE(r != nullptr);
      CHECK(r->tier == tier_of(s));
    }
  // A host without a sub-tier's features gets no record of it.
  CHECK_THROWS_WITH(detail::select_kernel(gemm_scheme::w8a8_int8, isa_subtier::amx, cpu_features{}),
                    Catch::Contains("no w8a8_int8 kernel for the amx tier"));
}

TEST_CASE("kernel registry: each record's layout is what its kernel reads", "[kernel_registry]") {
  for (const kernel_record* rp : registry_records()) {
    const kernel_record& r = *rp;
    INFO(to_string(r.scheme) << " " << r.suffix);
    if (r.ops->family == detail::kernel_family::float_decode) {
      CHECK(r.col_block == detail::float_block_cols);
      CHECK(r.layout == detail::float_layout_colblock32);
      CHECK(r.k_align == 1);
      // A tier's records serve its every sub-tier; the AMX-BF16 ones (avx512 tier code) only amx.
      if (detail::float_record_is_amx(r)) {
        CHECK(r.tier == isa_tier::avx512);
        CHECK(r.serves == detail::subtier_bit(isa_subtier::amx));
        CHECK(r.suffix == "amx");
      } else {
        CHECK(r.serves == detail::tier_subtiers(r.tier));
        CHECK(r.suffix == to_string(r.tier));
      }
      continue;
    }
    // Integer kernels: whole k steps per group, 16-column sub-blocks (at most 32 columns: the
    // packer's row table), zmm kernels two sub-blocks per tile, USMMLA pairs of steps, AMX a
    // whole tile's K (64 inputs) so that no tile reads across a group.
    const int kstep = is_int_activation_scheme(r.scheme) && r.scheme != gemm_scheme::w8a8_int8 ? 8 : 4;
    CHECK(r.k_align % kstep == 0);
    CHECK((r.col_block == 16 || r.col_block == 32));
    CHECK((r.tier == isa_tier::avx512) == (r.col_block == 32));
    if (r.layout == static_cast<std::uint32_t>(detail::int_layout::mmla)) CHECK(r.k_align % (2 * kstep) == 0);
    if (r.serves & detail::subtier_bit(isa_subtier::amx)) CHECK(r.k_align == 64);
    CHECK(r.suffix == to_string(static_cast<isa_subtier>(__builtin_ctz(r.serves))));
  }
}

TEST_CASE("kernel registry: pack() and selected_kernel follow the record", "[kernel_registry]") {
  lowbit::test::int_matrix_recipe ir;
  ir.rows = 40;
  ir.cols = 70;
  ir.group = 32;
  const QuantizedMatrix q4 = lowbit::test::make_int_matrix(ir);
  ir.format = element_format::int8;
  const QuantizedMatrix q8 = lowbit::test::make_int_matrix(ir);
  for (isa_subtier s : supported_isa_subtiers()) {
    for (const QuantizedMatrix* q : {&q4, &q8}) {
      PackOptions po;
      po.subtier = s;
      const PackedWeights w = pack(*q, po);
      INFO(selected_kernel(w));
      const kernel_record* r = w.kernel();
      REQUIRE(r != nullptr);
      CHECK(r == &detail::select_kernel(w.scheme(), s, host_cpu_features()));
      const detail::int_packed& p = w.int_weights();
      CHECK(p.nt == r->col_block);
      CHECK(p.k_align == r->k_align);
      CHECK(static_cast<std::uint32_t>(p.layout) == r->layout);
      CHECK(w.column_granule() == r->col_block);
      const std::string name(selected_kernel(w));
      CHECK(name.substr(name.size() - r->suffix.size()) == r->suffix);
    }
  }
  // The float family: one record per tier serves each of its sub-tiers.
  for (isa_subtier s : supported_isa_subtiers()) {
    PackOptions po;
    po.subtier = s;
    po.activations = activation_quant::none;
    const PackedWeights w = pack(q4, po);
    const kernel_record* r = w.kernel();
    REQUIRE(r != nullptr);
    INFO(selected_kernel(w));
    CHECK(r->ops->family == detail::kernel_family::float_decode);
    CHECK(r->tier == tier_of(s));
    CHECK(w.subtier() == s);
    CHECK(w.column_granule() == detail::float_block_cols);
    CHECK(std::string(selected_kernel(w)).find(std::string(r->suffix)) != std::string::npos);
  }
  CHECK(PackedWeights{}.kernel() == nullptr);
}

}  // namespace test_kernel_registry_cpp
