// Example 2: pack quantized weights once for this CPU and multiply.
//
// pack() lays a QuantizedMatrix out for the best kernel the CPU has (AVX-512 VNNI, AVX2,
// NEON or the portable scalar code); gemm() then computes y = x * W_hat^T, quantizing the
// activations per token inside the kernel when the scheme says so (W4A8 here). The result is
// checked against the plain fp32 product with the dequantized weights.
#include <lowbit/lowbit.hpp>

#include <cstdio>

int main() {
  using namespace lowbit;
  const RowMatrixXf w = RowMatrixXf::Random(1024, 2048);  // weights [out, in]
  const RowMatrixXf x = RowMatrixXf::Random(16, 2048);    // activations [tokens, in]
  const QuantizedMatrix q = quantize(w, group_spec(element_format::int4, 128, scale_constraint::none));

  for (activation_quant act : {activation_quant::none, activation_quant::int8}) {
    PackOptions po;
    po.activations = act;  // none: W4A16 (fp32 activations); int8: W4A8
    const PackedWeights packed = pack(q, po);
    RowMatrixXf y(x.rows(), w.rows());
    GemmOptions go;
    go.num_threads = 2;
    gemm(x, packed, y, go);
    const RowMatrixXf ref = x * dequantize(q).transpose();
    std::printf("%-6s kernel %-32s SQNR vs fp32 product with W_hat: %.1f dB\n",
                act == activation_quant::none ? "W4A16" : "W4A8", std::string(selected_kernel(packed)).c_str(),
                error_stats(ref, y).sqnr_db);
  }
  return 0;
}
