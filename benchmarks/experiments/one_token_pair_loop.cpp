// A stand-alone copy of the bf16 pair one-token loop (include/lowbit/kernels/x86/avx512_float.hpp,
// avx512bf16_direct_block_pairs, as of 2026-12-01) with the variants measured on Zen 5 for
// docs/performance.md, "One-token kernels at DRAM speed" (2026-12-02). Not part of any build:
// it isolates the loop (synthetic codes, one 4096 x 4096 matrix, group 128, e2m1-like table)
// so that prefetch and layout variants can be compared in minutes. It measures speed only;
// its results are not checked (the library's loop is tested in tests/test_float_bf16_pairs.cpp).
//
//   g++ -O2 -std=c++17 -o pair_loop one_token_pair_loop.cpp
//   taskset -c 1 ./pair_loop ROUNDS VARIANT...      (HOT=1: one copy, read from L3;
//                                                    HUGE=1: MADV_HUGEPAGE on the copies)
//
// VARIANT = P:mode:pf0:h0:pf1:h1:lines[:touch[:touch2]]
//   P      activation parts (1 or 2)
//   mode   0 the loop as it was; 1 decode a 4 KiB L1 buffer while prefetching the real
//          stream; 2 two column blocks interleaved; 3 compact pair table (VPERMD)
//   pf0/h0 prefetch distance in bytes / hint (0 none, 1 T0, 2 T1, 3 T2, 4 NTA), `lines`
//          lines a 256-byte step; pf1/h1 a second prefetch (pf1 = 0: none)
//   touch, touch2  one byte load per 4 KiB of codes that many bytes ahead (0: none)
// Each round times every variant over 100 matrices of a 1 GiB rotation (thread CPU time)
// after a 1 GiB read loop; printed: medians and ranges of GB/s and of the ratio to the read
// loop of the same round. Example (the final choice and the old loop, two parts):
//   ./pair_loop 7 2:3:8192:1:0:0:4:16384 2:0:8192:1:0:0:4
#include <immintrin.h>
#include <time.h>
#include <sys/mman.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

// GCC 12 reports its own intrinsics' _mm512_undefined_* operands as uninitialized once inlined
// (a false positive; the library's headers silence it the same way).
#pragma GCC diagnostic ignored "-Wuninitialized"

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi2")))
constexpr int K = 4096, N = 4096, G = 128, BLK = N / 32, GROUPS = K / G;
constexpr size_t CODE_BYTES = size_t(N) * K / 2, SCALE_FLOATS = size_t(BLK) * GROUPS * 32;
struct Mat { uint8_t* codes; float* scales; };
TGT inline __m512 dot(__m512 acc, __m512i w, __m512i x) { return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x); }
static uint16_t table16[32];
static uint8_t* hotbuf;

struct Cfg { long pf0 = 8192; int h0 = 1; long pf1 = 0; int h1 = 2; int lines = 4; long touch = 0; long touch2 = 0; };


template <int H> inline void pfh(const void* p) {
  if (H == 1) _mm_prefetch((const char*)p, _MM_HINT_T0);
  if (H == 2) _mm_prefetch((const char*)p, _MM_HINT_T1);
  if (H == 3) _mm_prefetch((const char*)p, _MM_HINT_T2);
  if (H == 4) _mm_prefetch((const char*)p, _MM_HINT_NTA);
}
inline void pf(const void* p, int h) {
  switch (h) { case 1: pfh<1>(p); break; case 2: pfh<2>(p); break; case 3: pfh<3>(p); break; case 4: pfh<4>(p); break; default: break; }
}

template <bool COMPACT = false>
TGT inline void step(const uint8_t* c, const uint32_t* pk, int P, __m512i lut, __m512 (&acc)[4][4]) {
  const __m512i va = _mm512_loadu_si512(c), vb = _mm512_loadu_si512(c + 64);
  const __m512i vc = _mm512_loadu_si512(c + 128), vd = _mm512_loadu_si512(c + 192);
  const __m512i abl = _mm512_unpacklo_epi8(va, vb), abh = _mm512_unpackhi_epi8(va, vb);
  const __m512i cdl = _mm512_unpacklo_epi8(vc, vd), cdh = _mm512_unpackhi_epi8(vc, vd);
  const __m512i t[4] = {_mm512_unpacklo_epi16(abl, cdl), _mm512_unpackhi_epi16(abl, cdl),
                        _mm512_unpacklo_epi16(abh, cdh), _mm512_unpackhi_epi16(abh, cdh)};
  __m512i x0[2], x1[2];
  if (COMPACT) {
    const __m512i i0 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(4));
    for (int p = 0; p < 2; ++p) if (p < P) {
      const __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(pk + 8 * p)));
      x0[p] = _mm512_permutexvar_epi32(i0, v); x1[p] = _mm512_permutexvar_epi32(i1, v);
    }
  } else
  for (int p = 0; p < 2; ++p) if (p < P) { x0[p] = _mm512_loadu_si512(pk + 32 * p); x1[p] = _mm512_loadu_si512(pk + 32 * p + 16); }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const __m512i w0 = _mm512_permutexvar_epi16(t[q], lut);
    const __m512i w1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 4), lut);
    const __m512i w2 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 8), lut);
    const __m512i w3 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 12), lut);
#pragma GCC unroll 2
    for (int p = 0; p < 2; ++p) if (p < P) {
      acc[q][0] = dot(acc[q][0], w0, x0[p]);
      acc[q][1] = dot(acc[q][1], w1, x0[p]);
      acc[q][2] = dot(acc[q][2], w2, x1[p]);
      acc[q][3] = dot(acc[q][3], w3, x1[p]);
    }
  }
}

// mode 0: normal; 1: loads from hotbuf (L1), prefetch the real stream
template <int P, int MODE>
TGT void block(const uint8_t* codes, const float* scales, const uint32_t* xw, float* out, const Cfg& cf) {
  const __m512i lut = _mm512_loadu_si512(table16);
  const __m512i lane_col = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
  alignas(64) float total[8][16] = {};
  for (int g = 0; g < GROUPS; ++g) {
    const float* sp = scales + (g + 2) * 32;
    _mm_prefetch((const char*)sp, _MM_HINT_T0);
    _mm_prefetch((const char*)(sp + 16), _MM_HINT_T0);
    __m512 acc[4][4];
    for (int q = 0; q < 4; ++q) for (int s = 0; s < 4; ++s) acc[q][s] = _mm512_setzero_ps();
    for (int k = g * G; k < (g + 1) * G; k += 16) {
      const uint8_t* c = codes + k * 16;
      for (int l = 0; l < cf.lines; ++l) pf(c + cf.pf0 + 64 * l, cf.h0);
      if (cf.pf1) for (int l = 0; l < 4; ++l) pf(c + cf.pf1 + 64 * l, cf.h1);
      if (cf.touch && ((k * 16) & 4095) == 0) { uint8_t v; __asm__ volatile("movzbl %1, %k0" : "=r"(v) : "m"(c[cf.touch])); (void)v; }
      if (cf.touch2 && ((k * 16) & 4095) == 0) { uint8_t v; __asm__ volatile("movzbl %1, %k0" : "=r"(v) : "m"(c[cf.touch2])); (void)v; }
      if (MODE == 3) step<true>(c, xw + (k / 16) * P * 8, P, lut, acc);
      else step(MODE == 1 ? hotbuf + (k * 16 & 4095) : c, xw + (k / 16) * P * 32, P, lut, acc);
    }
    const __m512 s0 = _mm512_loadu_ps(scales + g * 32), s1 = _mm512_loadu_ps(scales + g * 32 + 16);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512i idx = _mm512_add_epi32(lane_col, _mm512_set1_epi32(4 * q));
      float* tl = total[2 * q]; float* th = total[2 * q + 1];
      _mm512_store_ps(tl, _mm512_fmadd_ps(_mm512_add_ps(acc[q][0], acc[q][2]), _mm512_permutexvar_ps(idx, s0), _mm512_load_ps(tl)));
      _mm512_store_ps(th, _mm512_fmadd_ps(_mm512_add_ps(acc[q][1], acc[q][3]), _mm512_permutexvar_ps(idx, s1), _mm512_load_ps(th)));
    }
  }
  for (int q = 0; q < 4; ++q) for (int h = 0; h < 2; ++h) for (int i = 0; i < 4; ++i) {
    const float* tv = total[2 * q + h];
    out[4 * q + i + 16 * h] = (tv[i] + tv[4 + i]) + (tv[8 + i] + tv[12 + i]);
  }
}


// Two blocks at once (b and b+1: codes 64 KiB apart), x loads shared, 8 accumulators per block
// (the two halves that share columns summed in one chain).
TGT inline void step2(const uint8_t* c, const uint32_t* pk, int P, __m512i lut, __m512 (&acc)[2][4][2]) {
  __m512i x0[2], x1[2];
  for (int p = 0; p < 2; ++p) if (p < P) { x0[p] = _mm512_loadu_si512(pk + 32 * p); x1[p] = _mm512_loadu_si512(pk + 32 * p + 16); }
#pragma GCC unroll 2
  for (int bb = 0; bb < 2; ++bb) {
    const uint8_t* cb = c + bb * (K * 16);
    const __m512i va = _mm512_loadu_si512(cb), vb = _mm512_loadu_si512(cb + 64);
    const __m512i vc = _mm512_loadu_si512(cb + 128), vd = _mm512_loadu_si512(cb + 192);
    const __m512i abl = _mm512_unpacklo_epi8(va, vb), abh = _mm512_unpackhi_epi8(va, vb);
    const __m512i cdl = _mm512_unpacklo_epi8(vc, vd), cdh = _mm512_unpackhi_epi8(vc, vd);
    const __m512i t[4] = {_mm512_unpacklo_epi16(abl, cdl), _mm512_unpackhi_epi16(abl, cdl),
                          _mm512_unpacklo_epi16(abh, cdh), _mm512_unpackhi_epi16(abh, cdh)};
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512i w0 = _mm512_permutexvar_epi16(t[q], lut);
      const __m512i w1 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 4), lut);
      const __m512i w2 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 8), lut);
      const __m512i w3 = _mm512_permutexvar_epi16(_mm512_srli_epi16(t[q], 12), lut);
#pragma GCC unroll 2
      for (int p = 0; p < 2; ++p) if (p < P) {
        acc[bb][q][0] = dot(acc[bb][q][0], w0, x0[p]);
        acc[bb][q][1] = dot(acc[bb][q][1], w1, x0[p]);
        acc[bb][q][0] = dot(acc[bb][q][0], w2, x1[p]);
        acc[bb][q][1] = dot(acc[bb][q][1], w3, x1[p]);
      }
    }
  }
}

template <int P, int MODE>
TGT void block2(const uint8_t* codes, const float* scales, const uint32_t* xw, float* out, const Cfg& cf) {
  const __m512i lut = _mm512_loadu_si512(table16);
  const __m512i lane_col = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
  alignas(64) float total[2][8][16] = {};
  for (int g = 0; g < GROUPS; ++g) {
    for (int bb = 0; bb < 2; ++bb) {
      const float* sp = scales + bb * GROUPS * 32 + (g + 2) * 32;
      _mm_prefetch((const char*)sp, _MM_HINT_T0);
      _mm_prefetch((const char*)(sp + 16), _MM_HINT_T0);
    }
    __m512 acc[2][4][2];
    for (int bb = 0; bb < 2; ++bb) for (int q = 0; q < 4; ++q) for (int s = 0; s < 2; ++s) acc[bb][q][s] = _mm512_setzero_ps();
    for (int k = g * G; k < (g + 1) * G; k += 16) {
      const uint8_t* c = codes + k * 16;
      for (int bb = 0; bb < 2; ++bb) for (int l = 0; l < cf.lines; ++l) pf(c + bb * K * 16 + cf.pf0 + 64 * l, cf.h0);
      step2(c, xw + (k / 16) * P * 32, P, lut, acc);
    }
    for (int bb = 0; bb < 2; ++bb) {
      const float* sc = scales + bb * GROUPS * 32 + g * 32;
      const __m512 s0 = _mm512_loadu_ps(sc), s1 = _mm512_loadu_ps(sc + 16);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m512i idx = _mm512_add_epi32(lane_col, _mm512_set1_epi32(4 * q));
        float* tl = total[bb][2 * q]; float* th = total[bb][2 * q + 1];
        _mm512_store_ps(tl, _mm512_fmadd_ps(acc[bb][q][0], _mm512_permutexvar_ps(idx, s0), _mm512_load_ps(tl)));
        _mm512_store_ps(th, _mm512_fmadd_ps(acc[bb][q][1], _mm512_permutexvar_ps(idx, s1), _mm512_load_ps(th)));
      }
    }
  }
  for (int bb = 0; bb < 2; ++bb)
  for (int q = 0; q < 4; ++q) for (int h = 0; h < 2; ++h) for (int i = 0; i < 4; ++i) {
    const float* tv = total[bb][2 * q + h];
    out[32 * bb + 4 * q + i + 16 * h] = (tv[i] + tv[4 + i]) + (tv[8 + i] + tv[12 + i]);
  }
}

TGT uint64_t stream_read(const uint8_t* p, size_t bytes) {
  __m512i x0 = _mm512_setzero_si512(), x1 = x0, x2 = x0, x3 = x0;
  for (size_t i = 0; i < bytes; i += 256) {
    x0 = _mm512_xor_si512(x0, _mm512_load_si512((const void*)(p + i)));
    x1 = _mm512_xor_si512(x1, _mm512_load_si512((const void*)(p + i + 64)));
    x2 = _mm512_xor_si512(x2, _mm512_load_si512((const void*)(p + i + 128)));
    x3 = _mm512_xor_si512(x3, _mm512_load_si512((const void*)(p + i + 192)));
  }
  return (uint64_t)_mm512_reduce_add_epi64(_mm512_xor_si512(_mm512_xor_si512(x0, x1), _mm512_xor_si512(x2, x3)));
}

double now() { timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + 1e-9 * ts.tv_nsec; }

using BlockFn = void (*)(const uint8_t*, const float*, const uint32_t*, float*, const Cfg&);
struct Variant { std::string name; BlockFn f; Cfg cf; bool two = false; };

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const bool hot = getenv("HOT") != nullptr;
  for (int i = 0; i < 32; ++i) { float v = (i & 15) * 0.5f; uint32_t u; memcpy(&u, &v, 4); table16[i] = u >> 16; }
  hotbuf = (uint8_t*)aligned_alloc(64, 8192); memset(hotbuf, 0x35, 8192);
  const int copies = hot ? 1 : 120;
  std::vector<Mat> m(copies);
  for (auto& x : m) {
    x.codes = (uint8_t*)aligned_alloc(1 << 21, CODE_BYTES);
    if (getenv("HUGE")) madvise(x.codes, CODE_BYTES, MADV_HUGEPAGE);
    x.scales = (float*)aligned_alloc(64, SCALE_FLOATS * 4 + 4096);
    for (size_t i = 0; i < CODE_BYTES; ++i) x.codes[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t i = 0; i < SCALE_FLOATS; ++i) x.scales[i] = 0.01f;
  }
  { FILE* f = fopen("/proc/self/smaps_rollup", "r"); char line[256]; while (f && fgets(line, 256, f)) if (strstr(line, "AnonHuge")) fputs(line, stdout); if (f) fclose(f); }
  const size_t gb = size_t(1) << 30; uint8_t* buf = (uint8_t*)aligned_alloc(64, gb); memset(buf, 1, gb);
  std::vector<uint32_t> xw(K / 16 * 2 * 32, 0x3f803f80u);
  std::vector<float> out(N);
  std::vector<Variant> vs;
  // variant spec from argv[2..]: name=P:mode:pf0:h0:pf1:h1:lines
  for (int a = 2; a < argc; ++a) {
    std::string s = argv[a]; Variant v; v.name = s;
    int P, mode; long pf0, pf1; int h0, h1, lines; long touch = 0, touch2 = 0;
    if (sscanf(s.c_str(), "%d:%d:%ld:%d:%ld:%d:%d:%ld:%ld", &P, &mode, &pf0, &h0, &pf1, &h1, &lines, &touch, &touch2) < 7) { fprintf(stderr, "bad %s\n", s.c_str()); return 1; }
    v.cf = Cfg{pf0, h0, pf1, h1, lines, touch, touch2};
    v.f = P == 1 ? (mode == 1 ? block<1, 1> : block<1, 0>) : (mode == 1 ? block<2, 1> : block<2, 0>);
    if (mode == 2) v.f = P == 1 ? block2<1, 0> : block2<2, 0>;
    if (mode == 3) v.f = P == 1 ? block<1, 3> : block<2, 3>;
    v.two = mode == 2;
    vs.push_back(v);
  }
  const size_t bytes = CODE_BYTES + SCALE_FLOATS * 4;
  std::vector<std::vector<double>> rates(vs.size() + 1), ratio(vs.size());
  int idx = 0;
  for (int r = 0; r < rounds; ++r) {
    double t0 = now(); volatile uint64_t s = stream_read(buf, gb); (void)s;
    const double d = gb / (now() - t0) / 1e9; rates[vs.size()].push_back(d);
    for (size_t i = 0; i < vs.size(); ++i) {
      double t1 = now();
      const int reps = 100;
      for (int it = 0; it < reps; ++it) {
        const Mat& x = m[idx]; idx = (idx + 1) % copies;
        for (int b = 0; b < BLK; b += vs[i].two ? 2 : 1) vs[i].f(x.codes + size_t(b) * K * 16, x.scales + size_t(b) * GROUPS * 32, xw.data(), out.data(), vs[i].cf);
      }
      const double g = reps * bytes / (now() - t1) / 1e9;
      rates[i].push_back(g); ratio[i].push_back(g / d);
    }
  }
  auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  auto mn = [](std::vector<double> v) { return *std::min_element(v.begin(), v.end()); };
  auto mx = [](std::vector<double> v) { return *std::max_element(v.begin(), v.end()); };
  printf("dram_read: median %.2f (%.2f..%.2f)\n", med(rates[vs.size()]), mn(rates[vs.size()]), mx(rates[vs.size()]));
  for (size_t i = 0; i < vs.size(); ++i)
    printf("%-28s %6.2f GB/s (%.2f..%.2f)  ratio %.3f (%.3f..%.3f)\n", vs[i].name.c_str(), med(rates[i]), mn(rates[i]), mx(rates[i]), med(ratio[i]), mn(ratio[i]), mx(ratio[i]));
}
