// Example 1: convert numbers to the small formats, then quantize a whole matrix.
//
// lowbit's formats are value types (float8_e4m3fn, float4_e2m1fn, ...) with exact rounding
// rules; quantize() turns a row-major fp32 matrix ([out, in], the nn.Linear layout) into codes
// plus scales as a QuantSpec says, and dequantize() gives back the values a kernel multiplies by.
#include <lowbit/lowbit.hpp>

#include <cstdio>

int main() {
  using namespace lowbit;
  // One value at a time: round to nearest even; values above the format's range saturate.
  for (float x : {0.3f, 1.0f, 5.5f, 1000.0f}) {
    const float8_e4m3fn e4m3 = convert<float8_e4m3fn>(x);
    const float4_e2m1fn e2m1 = convert<float4_e2m1fn>(x);
    std::printf("%8g -> E4M3 %-8g (0x%02x)  E2M1 %g\n", x, e4m3.to_float(), e4m3.bits(), e2m1.to_float());
  }

  // A whole matrix: INT4 in groups of 32 along the input dimension, fp32 scales, and the same
  // weights as MXFP4 (E2M1 codes, a power-of-two E8M0 scale per 32).
  const RowMatrixXf w = RowMatrixXf::Random(256, 512);
  for (const QuantSpec& spec : {group_spec(element_format::int4, 32, scale_constraint::none),
                                group_spec(element_format::float4_e2m1fn, 32, scale_constraint::mx)}) {
    const QuantizedMatrix q = quantize(w, spec, "example");
    const ErrorStats e = error_stats(w, dequantize(q));
    std::printf("%-28s %.3f bits/weight, SQNR %.2f dB\n", to_string(spec).c_str(), q.bits_per_weight(), e.sqnr_db);
  }
  return 0;
}
