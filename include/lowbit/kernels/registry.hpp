#pragma once
// The kernel registry: one record per kernel (scheme x sub-tier) in one table, the shape of
// XNNPACK's gemm configs and KleidiAI's ukernel tables. A record says what the kernel needs
// from the CPU, what layout it packs (column block, group padding, byte order), which
// functions pack and run it, and which name selected_kernel() gives it. pack() picks the
// first record (in table order: preference) whose scheme matches, which serves the resolved
// sub-tier and whose requirements the host meets; PackedWeights keeps a pointer to it and
// gemm() runs that record's functions, after checking the packed layout against it ("pack
// them again" when they disagree).
//
// Adding a tier means adding records here (and, for a new LOWBIT_ISA name, a sub-tier in
// dispatch/cpu_features.hpp), not editing switches. Per-call variants of one layout (few
// tokens on AMX, the float family's fp16 / bf16-pair / quad paths) are call paths inside a
// record's run function, not records: a record is a layout. (The AMX-BF16 float records pack
// the AVX-512 float records' bytes; float_packed::amx_bf16 records which one packed them.)
//
// Compile time: the table holds pointers to every kernel's instantiation, so it is a class
// template (kernel_table<>) and is only instantiated where pack()/gemm() bodies are (see
// "Compile time" in docs/design.md).
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "lowbit/config.hpp"
#include "lowbit/dispatch/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/kernels/float_family.hpp"
#include "lowbit/kernels/int_family.hpp"
#include "lowbit/kernels/kernel.hpp"
#include "lowbit/pack/float_packing.hpp"
#include "lowbit/pack/int_packing.hpp"
#include "lowbit/quant/quantized_matrix.hpp"

namespace lowbit::detail {

using subtier_mask = std::uint32_t;
constexpr subtier_mask subtier_bit(isa_subtier s) noexcept { return subtier_mask{1} << static_cast<unsigned>(s); }
// Every sub-tier of tier t (the float family runs its tier's code on each of them).
constexpr subtier_mask tier_subtiers(isa_tier t) noexcept {
  subtier_mask m = 0;
  for (isa_subtier s : all_isa_subtiers)
    if (tier_of(s) == t) m |= subtier_bit(s);
  return m;
}

// A packed weight matrix of either family (PackedWeights holds one) and a call's workspace.
using packed_layout = std::variant<std::monostate, int_packed, float_packed>;
using gemm_workspace = std::variant<std::monostate, int_workspace, float_workspace>;

struct kernel_record;

// Runs the record's kernel on output columns [n_begin, n_end) (a multiple of col_block, or
// n_end = N) of y; the packed layout and workspace are the record's family's.
using kernel_run_fn = void (*)(const packed_header& w, const workspace_header& ws, RowMatrixRef y,
                               std::int64_t n_begin, std::int64_t n_end);

// What every record of a family shares (KleidiAI's lhs/rhs side): packing, the per-call
// workspace and activation preparation, the checks, the name and size.
struct family_ops {
  kernel_family family;
  // Packs q (codes at `codes`, nullptr: q.codes) for record r; `subtier` is the resolved one.
  packed_layout (*pack)(const QuantizedMatrix& q, const kernel_record& r, isa_subtier subtier,
                        const std::uint8_t* codes);
  // Throws "...; pack them again" when w is not what r packs or the host cannot run r.
  void (*check)(const packed_header& w, const kernel_record& r);
  // The workspace of a call of `tokens` rows of `input` activations (f16 / bf16 only where
  // reads_16bit said so).
  gemm_workspace (*make_workspace)(const packed_header& w, std::int64_t tokens, std::int64_t k,
                                   activation_dtype input);
  // Fills tokens [t0, t1) of ws from x (disjoint ranges may run on different threads).
  void (*prepare_tokens)(const packed_header& w, ConstRowMatrixRef x, workspace_header& ws, std::int64_t t0,
                         std::int64_t t1);
  // Whether a call of `tokens` rows of fp16 / bf16 activations reads them as they are (the
  // AVX512-FP16 path, the AMX-BF16 tiles); false: gemm() widens them to fp32, exactly, and
  // calls prepare_tokens. One rule per family, so a tier that reads 16-bit rows says so here.
  bool (*reads_16bit)(const packed_header& w, std::int64_t tokens, activation_dtype input);
  // prepare_tokens for those calls: 16-bit rows `stride` elements apart.
  void (*prepare_16bit_tokens)(const packed_header& w, const std::uint16_t* x, std::int64_t stride,
                               activation_dtype input, workspace_header& ws, std::int64_t t0, std::int64_t t1);
  // selected_kernel(): the kernel that runs more than 4 tokens of `input` activations.
  std::string (*name)(const packed_header& w, activation_dtype input);
  std::size_t (*bytes)(const packed_header& w);
};

struct kernel_record {
  std::string_view suffix;  // the last part of its name: the sub-tier (int), the tier (float)
  gemm_scheme scheme;
  isa_tier tier;            // the tier of its code (prepare's quantizer, bulk conversion)
  subtier_mask serves;      // the sub-tiers it runs for: int, one; float, every one of its tier
  feature_mask needs;       // host features it needs (checked at pack time and per call)
  int col_block;            // output columns per packed tile/block: a task's range granule
  int k_align;              // each group's K padded to a multiple of this (float: 1, none)
  std::uint32_t layout;     // the byte order id: int_layout (int), float_layout_colblock32
  const family_ops* ops;
  kernel_run_fn run;        // nullptr where this build lacks its code (never selected)
};

// ---- the integer family's functions ----------------------------------------------------------

inline void int_check(const packed_header& h, const kernel_record& r) {
  if (h.family != kernel_family::int_act) fail("gemm: weights were not packed for the integer kernels; pack them again");
  const int_packed& p = static_cast<const int_packed&>(h);
  if (p.tier != r.tier || p.nt != r.col_block || p.scheme != r.scheme || !(r.serves & subtier_bit(p.subtier)) ||
      p.k_align != r.k_align || static_cast<std::uint32_t>(p.layout) != r.layout)
    fail("gemm: weights packed for the " + std::string(to_string(p.tier)) + " layout (" + std::to_string(p.nt) +
         "-column tiles) cannot run on the " + std::string(to_string(r.tier)) + " kernel; pack them again");
  const feature_mask host = features_of(host_cpu_features());
  if (!subtier_supported(p.subtier, host_cpu_features()) || !features_cover(host, r.needs))
    fail("gemm: weights packed for the " + std::string(to_string(p.subtier)) +
         " kernel, which this CPU (or its OS) cannot run; pack them again");
}

template <class Deferred = void>
packed_layout int_pack(const QuantizedMatrix& q, const kernel_record& r, isa_subtier subtier,
                       const std::uint8_t* codes) {
  return pack_int_layout(q, r.scheme, subtier, r.col_block, r.k_align, static_cast<int_layout>(r.layout), codes);
}

inline gemm_workspace int_make_workspace(const packed_header& w, std::int64_t tokens, std::int64_t k,
                                         activation_dtype input) {
  if (input != activation_dtype::f32)
    fail("gemm: the integer kernels quantize fp32 activations, not " + std::string(to_string(input)));
  return make_int_workspace(static_cast<const int_packed&>(w), tokens, k);
}

inline void int_prepare_tokens(const packed_header& w, ConstRowMatrixRef x, workspace_header& ws, std::int64_t t0,
                               std::int64_t t1) {
  prepare_int_tokens(static_cast<const int_packed&>(w), x, w.tier, static_cast<int_workspace&>(ws), t0, t1);
}

// The integer kernels quantize fp32 rows: 16-bit activations are widened first.
inline bool int_reads_16bit(const packed_header&, std::int64_t, activation_dtype) { return false; }

inline void int_prepare_16bit_tokens(const packed_header&, const std::uint16_t*, std::int64_t, activation_dtype input,
                                     workspace_header&, std::int64_t, std::int64_t) {
  fail("gemm: the integer kernels quantize fp32 activations, not " + std::string(to_string(input)));
}

inline std::string int_name(const packed_header& w, activation_dtype) {
  return int_kernel_name(static_cast<const int_packed&>(w));
}

inline std::size_t int_bytes(const packed_header& w) { return int_packed_bytes(static_cast<const int_packed&>(w)); }

// A sub-tier's tile function, run on a column range (the shape every record's run has).
template <void (*Tiles)(const int_packed&, const int_workspace&, float*, std::int64_t, std::int64_t, std::int64_t)>
void run_int_columns(const packed_header& w, const workspace_header& wsh, RowMatrixRef y, std::int64_t n_begin,
                     std::int64_t n_end) {
  const int_packed& p = static_cast<const int_packed&>(w);
  const int_workspace& ws = static_cast<const int_workspace&>(wsh);
  if (y.rows() != ws.m || y.cols() != p.rows)
    fail("gemm: output is " + std::to_string(y.rows()) + " x " + std::to_string(y.cols()) + ", expected " +
         std::to_string(ws.m) + " x " + std::to_string(p.rows));
  if (n_begin < 0 || n_begin > n_end || n_end > p.rows || n_begin % p.nt != 0 ||
      (n_end % p.nt != 0 && n_end != p.rows))
    fail("gemm: column range [" + std::to_string(n_begin) + ", " + std::to_string(n_end) + ") is not tile-aligned");
  if (ws.m == 0 || n_begin == n_end) return;
  Tiles(p, ws, y.data(), y.outerStride(), n_begin / p.nt, (n_end + p.nt - 1) / p.nt);
}

template <class Deferred = void>
struct int_family_ops {
  static constexpr family_ops ops = {kernel_family::int_act,
                                     &int_pack<Deferred>,
                                     &int_check,
                                     &int_make_workspace,
                                     &int_prepare_tokens,
                                     &int_reads_16bit,
                                     &int_prepare_16bit_tokens,
                                     &int_name,
                                     &int_bytes};
};

// An integer record: scheme S on sub-tier s, with `col_block`-column tiles, the `layout` byte
// order and groups padded to `k_steps` k steps (kstep: 4 inputs for int8, 8 for int4), or to
// `k_inputs` inputs when that is non-zero (AMX: one tile's K).
template <gemm_scheme S, class Deferred>
constexpr kernel_record int_kernel(isa_subtier s, int col_block, int_layout layout, int k_steps, int k_inputs,
                                   kernel_run_fn run) {
  const int kstep = int_scheme_is_int4(S) ? 8 : 4;
  return kernel_record{to_string(s),        S,     tier_of(s), subtier_bit(s), subtier_needs(s),
                       col_block,           k_inputs != 0 ? k_inputs : k_steps * kstep,
                       static_cast<std::uint32_t>(layout), &int_family_ops<Deferred>::ops, run};
}

// ---- the float family's functions ------------------------------------------------------------

// Whether r is an AMX-BF16 float record (packs float_packed::amx_bf16 weights).
constexpr bool float_record_is_amx(const kernel_record& r) noexcept {
  return (r.needs & feature_bit(cpu_feature::amx_bf16)) != 0;
}

inline void float_check(const packed_header& h, const kernel_record& r) {
  if (h.family != kernel_family::float_decode)
    fail("gemm: weights were not packed for the float kernels; pack them again");
  const float_packed& w = static_cast<const float_packed&>(h);
  if (w.layout != r.layout) fail("gemm: packed weights: layout is not the float family's colblock32");
  if (w.tier != r.tier || w.scheme != r.scheme || !(r.serves & subtier_bit(w.subtier)))
    fail("gemm: weights packed for the " + std::string(to_string(w.tier)) + " layout cannot run on the " +
         std::string(to_string(r.tier)) + " kernel; pack them again");
  if (w.amx_bf16 != float_record_is_amx(r))
    fail(std::string("gemm: weights packed for the ") + (w.amx_bf16 ? "AMX-BF16" : "AVX-512") +
         " float kernel cannot run on the " + (float_record_is_amx(r) ? "AMX-BF16" : "AVX-512") +
         " one; pack them again");
  // As for the integer family: weights that say they were packed for a sub-tier this host
  // cannot run (AMX weights moved to a CPU without it) are refused, not run on other code.
  if (!subtier_supported(w.subtier, host_cpu_features()) ||
      !features_cover(features_of(host_cpu_features()), r.needs))
    fail("gemm: packed weights were made for ISA tier " + std::string(to_string(w.tier)) +
         ", which this CPU does not support; pack them again");
}

template <class Deferred = void>
packed_layout float_pack(const QuantizedMatrix& q, const kernel_record& r, isa_subtier subtier,
                         const std::uint8_t* codes) {
  float_packed w = pack_float(q, r.scheme, r.tier, codes);
  w.subtier = subtier;
  w.amx_bf16 = float_record_is_amx(r);
  return w;
}

// The float family reads 16-bit rows on two paths: W4A16 weights on the AVX512-FP16 kernel
// (float_uses_fp16_path; not w4a8_fp4, whose fp16 path takes fp32 x to quantize it), and
// weight-only schemes on the bf16 tiles (float_bf16_tiles_read_rows: AMX-BF16, or VDPBF16PS
// for bf16 inputs).
inline bool float_reads_16bit(const packed_header& w, std::int64_t tokens, activation_dtype input) {
  const float_packed& p = static_cast<const float_packed&>(w);
  if (input == activation_dtype::f32) return false;
  // (The two exclude each other: float_uses_fp16_path is false where the bf16 tiles run.)
  return float_bf16_tiles_read_rows(p, tokens, input) ||
         (is_w4a16_scheme(p.scheme) && float_uses_fp16_path(p, tokens, input));
}

inline gemm_workspace float_make_workspace(const packed_header& w, std::int64_t tokens, std::int64_t k,
                                           activation_dtype input) {
  const float_packed& p = static_cast<const float_packed&>(w);
  if (input != activation_dtype::f32 && !float_reads_16bit(w, tokens, input))
    fail("gemm: " + std::string(to_string(input)) + " activations are widened to fp32 for " + float_kernel_name(p));
  if (float_uses_bf16_tiles(p, tokens, input)) return make_float_bf16_tiles_workspace(p, tokens, k, input);
  return input == activation_dtype::f32 ? make_float_workspace(p, tokens, k)
                                        : make_float_half_workspace(p, tokens, k, input);
}

inline void float_prepare_tokens(const packed_header& w, ConstRowMatrixRef x, workspace_header& ws, std::int64_t t0,
                                 std::int64_t t1) {
  // The workspace says which path runs: the bf16 parts are there only for the bf16 tiles.
  const float_packed& p = static_cast<const float_packed&>(w);
  if (!static_cast<const float_workspace&>(ws).x_bf16.empty())
    prepare_float_bf16_tiles_tokens(p, x, static_cast<float_workspace&>(ws), t0, t1);
  else
    prepare_float_tokens(p, x, static_cast<float_workspace&>(ws), t0, t1);
}

inline void float_prepare_16bit_tokens(const packed_header& w, const std::uint16_t* x, std::int64_t stride,
                                       activation_dtype input, workspace_header& ws, std::int64_t t0, std::int64_t t1) {
  const float_packed& p = static_cast<const float_packed&>(w);
  float_workspace& fws = static_cast<float_workspace&>(ws);
  if (!fws.x_bf16.empty())
    prepare_float_bf16_tiles_rows(p, x, stride, input, fws, t0, t1);
  else
    prepare_float_half_tokens(x, stride, input, fws, t0, t1);
}

inline std::string float_name(const packed_header& w, activation_dtype input) {
  return float_kernel_name(static_cast<const float_packed&>(w), input);
}

inline std::size_t float_bytes(const packed_header& w) {
  return float_packed_bytes(static_cast<const float_packed&>(w));
}

// A tier's run function with the checks every float run makes (the workspace belongs to these
// weights, shapes and ranges).
template <void (*Run)(const float_packed&, const float_workspace&, RowMatrixRef, std::int64_t, std::int64_t)>
void run_float_columns(const packed_header& h, const workspace_header& wsh, RowMatrixRef y, std::int64_t n_begin,
                       std::int64_t n_end) {
  const float_packed& w = static_cast<const float_packed&>(h);
  const float_workspace& ws = static_cast<const float_workspace&>(wsh);
  if (ws.layout != w.layout || ws.scheme != w.scheme || ws.cols != w.cols || ws.group_size != w.group_size)
    fail("gemm: workspace was prepared for other packed weights");
  if (y.rows() != ws.tokens || y.cols() != w.rows)
    fail("gemm: y is " + std::to_string(y.rows()) + "x" + std::to_string(y.cols()) + ", expected " +
         std::to_string(ws.tokens) + "x" + std::to_string(w.rows));
  if (n_begin < 0 || n_begin > n_end || n_end > w.rows)
    fail("gemm: column range [" + std::to_string(n_begin) + ", " + std::to_string(n_end) + ") is outside the " +
         std::to_string(w.rows) + " outputs");
  if (!ws.x_half.empty() && w.tier != isa_tier::avx512)
    fail("gemm: workspace holds fp16 activations, which only the avx512 tier runs");
  if (n_begin == n_end || ws.tokens == 0) return;
  Run(w, ws, y, n_begin, n_end);
}

template <class Deferred = void>
struct float_family_ops {
  static constexpr family_ops ops = {kernel_family::float_decode,
                                     &float_pack<Deferred>,
                                     &float_check,
                                     &float_make_workspace,
                                     &float_prepare_tokens,
                                     &float_reads_16bit,
                                     &float_prepare_16bit_tokens,
                                     &float_name,
                                     &float_bytes};
};

// A float record: scheme S on every sub-tier of tier t (32-column blocks, K unpadded).
template <class Deferred>
constexpr kernel_record float_kernel(gemm_scheme s, isa_tier t, kernel_run_fn run) {
  return kernel_record{to_string(t), s, t, tier_subtiers(t), tier_needs(t), float_block_cols, 1,
                       float_layout_colblock32, &float_family_ops<Deferred>::ops, run};
}

// An AMX-BF16 float record: scheme S on sub-tier amx only, the avx512 tier's layout and code
// (its few-token path) plus the tiles: AVX512-BF16 comes with AMX-BF16 on every CPU that has
// it, and is named so that the record states what its code runs.
constexpr feature_mask float_amx_needs() noexcept {
  using c = cpu_feature;
  return tier_needs(isa_tier::avx512) | feature_bit(c::avx512bf16) | feature_bit(c::amx_tile) |
         feature_bit(c::amx_bf16) | feature_bit(c::amx_permitted);
}
template <class Deferred>
constexpr kernel_record float_amx_kernel(gemm_scheme s, kernel_run_fn run) {
  return kernel_record{to_string(isa_subtier::amx), s, isa_tier::avx512, subtier_bit(isa_subtier::amx),
                       float_amx_needs(), float_block_cols, 1, float_layout_colblock32,
                       &float_family_ops<Deferred>::ops, run};
}

// ---- the table -------------------------------------------------------------------------------

// The run function of a record in builds that compile its code, nullptr elsewhere: every
// record exists in every build (its layout is what pack_int() and the layout tests read on
// any CPU), but only records with a run function are ever selected.
#if LOWBIT_HAVE_X86_SIMD
#define LOWBIT_RUN_X86(run) run
#else
#define LOWBIT_RUN_X86(run) nullptr
#endif
#if LOWBIT_HAVE_NEON
#define LOWBIT_RUN_NEON(run) run
#else
#define LOWBIT_RUN_NEON(run) nullptr
#endif
#define LOWBIT_RUN_ANY(run) run

// Order is preference: the first record that matches (scheme, sub-tier, host) is packed.
template <class Deferred = void>
struct kernel_table {
  // The three integer schemes of one sub-tier: groups padded to `k_steps` k steps, or to
  // `k_inputs` inputs when that is non-zero; `fn` is the sub-tier's tile function.
#define LOWBIT_INT_RECORDS(sub, cols, layout, k_steps, k_inputs, RUN, fn)                                      \
  int_kernel<gemm_scheme::w8a8_int8, Deferred>(isa_subtier::sub, cols, int_layout::layout, k_steps, k_inputs,    \
                                               RUN(&run_int_columns<&fn<gemm_scheme::w8a8_int8>>)),             \
      int_kernel<gemm_scheme::w4a8_int4, Deferred>(isa_subtier::sub, cols, int_layout::layout, k_steps, k_inputs, \
                                                   RUN(&run_int_columns<&fn<gemm_scheme::w4a8_int4>>)),         \
      int_kernel<gemm_scheme::w4a8_int4_m2, Deferred>(isa_subtier::sub, cols, int_layout::layout, k_steps,       \
                                                      k_inputs, RUN(&run_int_columns<&fn<gemm_scheme::w4a8_int4_m2>>)),
  // The five float schemes of one tier (one run function decodes every code).
#define LOWBIT_FLOAT_RECORDS(tier, RUN, fn)                                                                    \
  float_kernel<Deferred>(gemm_scheme::w8a8_fp8, isa_tier::tier, RUN(&run_float_columns<&fn<Deferred>>)),         \
      float_kernel<Deferred>(gemm_scheme::w4a8_fp4, isa_tier::tier, RUN(&run_float_columns<&fn<Deferred>>)),     \
      float_kernel<Deferred>(gemm_scheme::w4a16_int4, isa_tier::tier, RUN(&run_float_columns<&fn<Deferred>>)),   \
      float_kernel<Deferred>(gemm_scheme::w4a16_fp4, isa_tier::tier, RUN(&run_float_columns<&fn<Deferred>>)),    \
      float_kernel<Deferred>(gemm_scheme::w8a16_int8, isa_tier::tier, RUN(&run_float_columns<&fn<Deferred>>)),
#define LOWBIT_FLOAT_AMX_RECORDS(RUN, fn)                                                                  \
  float_amx_kernel<Deferred>(gemm_scheme::w8a8_fp8, RUN(&run_float_columns<&fn<Deferred>>)),                   \
      float_amx_kernel<Deferred>(gemm_scheme::w4a8_fp4, RUN(&run_float_columns<&fn<Deferred>>)),               \
      float_amx_kernel<Deferred>(gemm_scheme::w4a16_int4, RUN(&run_float_columns<&fn<Deferred>>)),             \
      float_amx_kernel<Deferred>(gemm_scheme::w4a16_fp4, RUN(&run_float_columns<&fn<Deferred>>)),              \
      float_amx_kernel<Deferred>(gemm_scheme::w8a16_int8, RUN(&run_float_columns<&fn<Deferred>>)),
  static constexpr kernel_record records[] = {
      //                 sub-tier   cols layout k steps k inputs  code     tile function
      LOWBIT_INT_RECORDS(amx,        32, dot4,  1,      64,       LOWBIT_RUN_X86, run_int_amx)         // TDPBSSD
      LOWBIT_INT_RECORDS(avx512vnni, 32, dot4,  1,      0,        LOWBIT_RUN_X86, run_int_avx512vnni)  // VPDPBUSD zmm
      LOWBIT_INT_RECORDS(avx512bw,   32, dot4,  1,      0,        LOWBIT_RUN_X86, run_int_avx512bw)    // VPMADDUBSW zmm
      LOWBIT_INT_RECORDS(avx2vnni,   16, dot4,  1,      0,        LOWBIT_RUN_X86, run_int_avx2vnni)    // AVX-VNNI ymm
      LOWBIT_INT_RECORDS(avx2,       16, dot4,  1,      0,        LOWBIT_RUN_X86, run_int_avx2)        // VPMADDUBSW ymm
      LOWBIT_INT_RECORDS(neoni8mm,   16, mmla,  2,      0,        LOWBIT_RUN_NEON, run_int_neoni8mm)   // USMMLA
      LOWBIT_INT_RECORDS(neondot,    16, dot4,  1,      0,        LOWBIT_RUN_NEON, run_int_neondot)    // SDOT
      // AArch64 without SDOT has no kernel of its own: the scalar loop on the 16-column layout.
      LOWBIT_INT_RECORDS(neon,       16, dot4,  1,      0,        LOWBIT_RUN_NEON, run_int_scalar)
      LOWBIT_INT_RECORDS(scalar,     16, dot4,  1,      0,        LOWBIT_RUN_ANY, run_int_scalar)
      //                   tier    code             run function
      // AMX-BF16 (TDPBF16PS) before the AVX-512 records, which stay the fallback on sub-tier amx
      // for a host with AMX-INT8 but not AMX-BF16.
      LOWBIT_FLOAT_AMX_RECORDS(LOWBIT_RUN_X86,      run_float_amx)
      LOWBIT_FLOAT_RECORDS(avx512, LOWBIT_RUN_X86,  run_float_avx512_tier)
      LOWBIT_FLOAT_RECORDS(avx2,   LOWBIT_RUN_X86,  run_float_avx2)
      LOWBIT_FLOAT_RECORDS(neon,   LOWBIT_RUN_NEON, run_float_neon)
      LOWBIT_FLOAT_RECORDS(scalar, LOWBIT_RUN_ANY,  run_float_scalar)
  };
#undef LOWBIT_INT_RECORDS
#undef LOWBIT_FLOAT_RECORDS
#undef LOWBIT_FLOAT_AMX_RECORDS
};
#undef LOWBIT_RUN_X86
#undef LOWBIT_RUN_NEON
#undef LOWBIT_RUN_ANY

// The record of (scheme, sub-tier) regardless of the host and of whether this build has its
// code (layout lookups, checks, wrappers), or nullptr.
template <class Deferred = void>
const kernel_record* find_kernel(gemm_scheme scheme, isa_subtier subtier) noexcept {
  for (const kernel_record& r : kernel_table<Deferred>::records)
    if (r.scheme == scheme && (r.serves & subtier_bit(subtier))) return &r;
  return nullptr;
}

// The record pack() uses: the first whose scheme matches, which serves `subtier`, whose code
// this build has and whose requirements `host` meets.
template <class Deferred = void>
const kernel_record& select_kernel(gemm_scheme scheme, isa_subtier subtier, const cpu_features& host) {
  const feature_mask have = features_of(host);
  for (const kernel_record& r : kernel_table<Deferred>::records)
    if (r.scheme == scheme && (r.serves & subtier_bit(subtier)) && r.run != nullptr && features_cover(have, r.needs))
      return r;
  fail("pack: no " + std::string(to_string(scheme)) + " kernel for the " + std::string(to_string(subtier)) +
       " tier in this build, or this CPU cannot run it");
}

// The workspace's common part (gemm() hands it to the record's functions).
inline workspace_header& workspace_of(gemm_workspace& ws) {
  if (auto* i = std::get_if<int_workspace>(&ws)) return *i;
  return std::get<float_workspace>(ws);
}
inline const workspace_header& workspace_of(const gemm_workspace& ws) {
  if (const auto* i = std::get_if<int_workspace>(&ws)) return *i;
  return std::get<float_workspace>(ws);
}

// ---- the families' entry points for tests and benchmarks (they read the table) ---------------

// The integer layout rules of a sub-tier, as its records state them.
template <class Deferred = void>
int int_tile_columns(isa_subtier s) {
  const kernel_record* r = find_kernel<Deferred>(gemm_scheme::w8a8_int8, s);
  if (r == nullptr) fail("no integer kernel for the " + std::string(to_string(s)) + " tier in this build");
  return r->col_block;
}
template <class Deferred = void>
int_layout int_layout_of(isa_subtier s) {
  const kernel_record* r = find_kernel<Deferred>(gemm_scheme::w8a8_int8, s);
  if (r == nullptr) fail("no integer kernel for the " + std::string(to_string(s)) + " tier in this build");
  return static_cast<int_layout>(r->layout);
}
template <class Deferred = void>
int int_k_align(isa_subtier s, int kstep) {
  const kernel_record* r = find_kernel<Deferred>(kstep == 8 ? gemm_scheme::w4a8_int4 : gemm_scheme::w8a8_int8, s);
  if (r == nullptr) fail("no integer kernel for the " + std::string(to_string(s)) + " tier in this build");
  return r->k_align;
}

// Packs q for `scheme` on `subtier`, with the layout of that sub-tier's record.
template <class Deferred = void>
int_packed pack_int(const QuantizedMatrix& q, gemm_scheme scheme, isa_subtier subtier,
                    const std::uint8_t* codes = nullptr) {
  const kernel_record* r = find_kernel<Deferred>(scheme, subtier);
  if (r == nullptr || r->ops->family != kernel_family::int_act)
    fail("pack(" + std::string(to_string(scheme)) + "): no integer kernel for the " + std::string(to_string(subtier)) +
         " tier in this build");
  return std::get<int_packed>(r->ops->pack(q, *r, subtier, codes));
}

// Runs the kernel of p's record over the output columns [n_begin, n_end), which must be
// tile-aligned (n_end may be N). `tier` is the caller's tier: weights packed for another
// tier's layout, or for a sub-tier this CPU cannot run, are rejected.
template <class Deferred = void>
void run_int(const int_packed& p, const int_workspace& ws, RowMatrixRef y, std::int64_t n_begin, std::int64_t n_end,
             isa_tier tier) {
  const kernel_record* r = find_kernel<Deferred>(p.scheme, p.subtier);
  if (p.tier != tier || r == nullptr || r->run == nullptr)
    fail("gemm: weights packed for the " + std::string(to_string(p.tier)) + " layout (" + std::to_string(p.nt) +
         "-column tiles) cannot run on the " + std::string(to_string(tier)) + " kernel; pack them again");
  r->ops->check(p, *r);
  r->run(p, ws, y, n_begin, n_end);
}

// Runs the float kernel of w's tier over the output columns [n_begin, n_end) (ranges that
// start on multiples of float_block_cols waste no work).
template <class Deferred = void>
void run_float(const float_packed& w, const float_workspace& ws, RowMatrixRef y, std::int64_t n_begin,
               std::int64_t n_end) {
  if (w.layout != float_layout_colblock32) fail("gemm: packed weights: layout is not the float family's colblock32");
  // The record that packed w: on sub-tier amx the AMX-BF16 one or its AVX-512 fallback.
  const kernel_record* r = nullptr;
  for (const kernel_record& k : kernel_table<Deferred>::records)
    if (k.scheme == w.scheme && (k.serves & subtier_bit(w.subtier)) && float_record_is_amx(k) == w.amx_bf16) {
      r = &k;
      break;
    }
  if (r == nullptr || r->tier != w.tier || r->run == nullptr)
    fail("gemm: no float kernel for ISA tier " + std::string(to_string(w.tier)) + " in this build");
  r->ops->check(w, *r);
  r->run(w, ws, y, n_begin, n_end);
}

}  // namespace lowbit::detail
