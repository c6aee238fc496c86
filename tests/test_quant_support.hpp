#pragma once
// Shared helpers for the quantizer tests: deterministic random matrices and the list of every
// spec (format x granularity x constraint x symmetric x scale rule/storage) worth testing.
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/config.hpp"
#include "lowbit/quant/scheme.hpp"

namespace lowbit_test {

// Student-t-ish heavy-tailed values (normal / sqrt(chi2/nu)), deterministic.
inline lowbit::RowMatrixXf random_matrix(std::int64_t rows, std::int64_t cols, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::chi_squared_distribution<float> chi(4.0f);
  lowbit::RowMatrixXf m(rows, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) m(r, c) = scale * n(rng) / std::sqrt(chi(rng) / 4.0f + 1e-3f);
  return m;
}

inline std::string describe(const lowbit::QuantSpec& s) {
  std::ostringstream o;
  o << "format=" << int(s.format) << " gran=" << int(s.gran) << " g=" << s.group_size << " sym=" << s.symmetric
    << " constraint=" << int(s.constraint) << " storage=" << int(s.scale_storage) << " rule=" << int(s.int_rule)
    << " mxr=" << int(s.mx_rounding) << " clip=" << s.clip.enabled;
  return o.str();
}

// Every meaningful spec, with group size `group` where one applies.
inline std::vector<lowbit::QuantSpec> all_specs(int group) {
  using namespace lowbit;
  std::vector<QuantSpec> out;
  const element_format formats[] = {element_format::int8,          element_format::int4,
                                    element_format::float8_e4m3fn, element_format::float8_e5m2,
                                    element_format::float6_e3m2fn, element_format::float6_e2m3fn,
                                    element_format::float4_e2m1fn};
  for (element_format f : formats) {
    const bool is_int = is_integer_format(f);
    for (granularity gr : {granularity::per_tensor, granularity::per_channel, granularity::per_group}) {
      for (scale_constraint c : {scale_constraint::none, scale_constraint::pow2_m1, scale_constraint::pow2_m2}) {
        QuantSpec s;
        s.format = f;
        s.gran = gr;
        s.group_size = group;
        s.constraint = c;
        out.push_back(s);
        if (c == scale_constraint::none) {
          for (scale_dtype st : {scale_dtype::f16, scale_dtype::bf16}) {
            QuantSpec t = s;
            t.scale_storage = st;
            out.push_back(t);
          }
          if (is_int) {
            QuantSpec a = s;
            a.symmetric = false;
            out.push_back(a);
            for (int_scale_rule rule : {int_scale_rule::amax_over_qmax_half, int_scale_rule::q4_0}) {
              QuantSpec t = s;
              t.int_rule = rule;
              out.push_back(t);
            }
          }
        }
        if (c == scale_constraint::pow2_m2) {
          QuantSpec t = s;
          t.scale_storage = scale_dtype::bf16;
          out.push_back(t);
        }
      }
    }
    if (!is_int) {
      out.push_back(mx_spec(f));
      out.push_back(mx_spec(f, mx_scale_rounding::round_up_175));
    }
  }
  out.push_back(nvfp4_spec());
  return out;
}

}  // namespace lowbit_test
