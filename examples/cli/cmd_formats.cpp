// `lowbit formats`: every small float format's full value table (all codes, derived from the
// bit description) and its measured bulk conversion throughput, scalar against the tier this
// CPU selects (LOWBIT_ISA can force one).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <tuple>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/formats.hpp"
#include "registry.hpp"

namespace {

struct formats_options {
  std::string only;  // one format's name, or empty for all
  bool throughput = true;
  double seconds = 0.02;  // per measurement
  bool json = false;
};

std::string value_text(float v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);  // shortest text that reads back as exactly this value
}

template <class T>
void print_header() {
  using tr = lowbit::format_traits<T>;
  if constexpr (std::is_same_v<T, lowbit::float8_e8m0fnu>) {
    fmt::print("{}  (8 bits: unsigned exponent, bias 127; 2^-127 .. 2^127, NaN; no zero, no Inf)\n", tr::name);
  } else {
    const char* specials = tr::has_inf ? "Inf and NaN" : tr::has_nan ? "NaN, no Inf" : "no Inf, no NaN";
    fmt::print("{}  ({} bits: sign, {} exponent, {} mantissa, bias {}; max {}, min subnormal {}; {})\n",
               tr::name, tr::bits, tr::exponent_bits, tr::mantissa_bits, tr::bias, value_text(tr::max_finite()),
               value_text(tr::min_subnormal()), specials);
  }
}

// Signed formats: the non-negative half, 8 codes a row (the other half is the negatives).
template <class T>
void print_signed_table() {
  const unsigned half = lowbit::format_traits<T>::code_count / 2;
  fmt::print("  codes 0x{:02X}-0x{:02X} are the negatives of 0x00-0x{:02X}\n", half,
             2 * half - 1, half - 1);
  std::vector<std::string> cells(half);
  std::size_t width = 0;
  for (unsigned c = 0; c < half; ++c) {
    cells[c] = value_text(T::from_bits(static_cast<std::uint8_t>(c)).to_float());
    width = std::max(width, cells[c].size());
  }
  for (unsigned row = 0; row < half; row += 8) {
    std::string line = fmt::format("  0x{:02X}:", row);
    for (unsigned c = row; c < row + 8 && c < half; ++c) line += fmt::format(" {:>{}}", cells[c], width);
    fmt::print("{}\n", line);
  }
}

// E8M0: every code is a power of two, 16 exponents a row.
void print_e8m0_table() {
  fmt::print("  code c = 2^(c-127); 0xFF = NaN\n");
  for (unsigned row = 0; row < 256; row += 16) {
    std::string line = fmt::format("  0x{:02X}:", row);
    for (unsigned c = row; c < row + 16; ++c) {
      const auto t = lowbit::float8_e8m0fnu::from_bits(static_cast<std::uint8_t>(c));
      line += t.is_nan() ? std::string("    nan") : fmt::format(" {:>6}", fmt::format("2^{}", t.exponent()));
    }
    fmt::print("{}\n", line);
  }
}

// Elements per second of `step` (which converts `n` elements): the fastest of many short
// batches within about `seconds`, so a busy machine's preemptions do not show up as slowness.
template <class F>
double elements_per_second(F&& step, std::size_t n, double seconds) {
  using clock = std::chrono::steady_clock;
  constexpr int batch = 8;
  step();  // warm up
  double best = 0;  // seconds per batch
  const auto start = clock::now();
  do {
    const auto t0 = clock::now();
    for (int i = 0; i < batch; ++i) step();
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (best == 0 || dt < best) best = dt;
  } while (std::chrono::duration<double>(clock::now() - start).count() < seconds);
  return static_cast<double>(batch * n) / best;
}

struct throughput {
  lowbit::isa_tier tier = lowbit::isa_tier::scalar;  // the tier this CPU selects
  double scalar_encode = 0, scalar_decode = 0, encode = 0, decode = 0;  // elements/s
};

template <class T>
throughput measure_throughput(double seconds) {
  constexpr std::size_t n = 4096;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, lowbit::format_traits<T>::max_finite() / 4);
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = std::is_same_v<T, lowbit::float8_e8m0fnu> ? std::fabs(normal(rng)) * 0x1p-100f : normal(rng);
  std::vector<T> q(n);
  throughput r;
  r.tier = lowbit::selected_isa_tier();
  auto measure = [&](lowbit::isa_tier tier) {
    const double enc = elements_per_second(
        [&] { lowbit::convert_n(tier, x.data(), q.data(), n, lowbit::saturation::finite); }, n,
        seconds);
    const double dec =
        elements_per_second([&] { lowbit::to_float_n(tier, q.data(), y.data(), n); }, n, seconds);
    return std::pair<double, double>{enc, dec};
  };
  std::tie(r.scalar_encode, r.scalar_decode) = measure(lowbit::isa_tier::scalar);
  if (r.tier == lowbit::isa_tier::scalar) {
    r.encode = r.scalar_encode;
    r.decode = r.scalar_decode;
  } else {
    std::tie(r.encode, r.decode) = measure(r.tier);
  }
  return r;
}

template <class T>
void print_throughput(double seconds) {
  const throughput t = measure_throughput<T>(seconds);
  if (t.tier == lowbit::isa_tier::scalar) {
    fmt::print("  throughput: convert_n {:.0f} M/s, to_float_n {:.0f} M/s (scalar)\n", t.scalar_encode / 1e6,
               t.scalar_decode / 1e6);
    return;
  }
  fmt::print("  throughput: convert_n scalar {:.0f} M/s, {} {:.0f} M/s ({:.1f}x); "
             "to_float_n scalar {:.0f} M/s, {} {:.0f} M/s ({:.1f}x)\n",
             t.scalar_encode / 1e6, lowbit::to_string(t.tier), t.encode / 1e6, t.encode / t.scalar_encode,
             t.scalar_decode / 1e6, lowbit::to_string(t.tier), t.decode / 1e6, t.decode / t.scalar_decode);
}

// A value in JSON: a number, or "nan" / "inf" / "-inf" (JSON has no such numbers).
nlohmann::json value_json(float v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(value_text(v)); }

// One format as JSON: its description, the value of every code, and the throughput.
template <class T>
nlohmann::json format_json(const formats_options& opt) {
  using tr = lowbit::format_traits<T>;
  nlohmann::json j = {{"name", std::string(tr::name)}, {"bits", tr::bits}};
  if constexpr (!std::is_same_v<T, lowbit::float8_e8m0fnu>) {
    j["exponent_bits"] = tr::exponent_bits;
    j["mantissa_bits"] = tr::mantissa_bits;
    j["bias"] = tr::bias;
    j["max_finite"] = value_json(tr::max_finite());
    j["min_subnormal"] = value_json(tr::min_subnormal());
    j["has_inf"] = tr::has_inf;
    j["has_nan"] = tr::has_nan;
  } else {
    j["bias"] = 127;
    j["has_inf"] = false;
    j["has_nan"] = true;
  }
  auto& values = j["values"] = nlohmann::json::array();  // index = code
  for (unsigned c = 0; c < tr::code_count; ++c) values.push_back(value_json(T::from_bits(static_cast<std::uint8_t>(c)).to_float()));
  if (opt.throughput) {
    const throughput t = measure_throughput<T>(opt.seconds);
    j["throughput"] = {{"tier", lowbit::to_string(t.tier)},
                       {"scalar_convert_per_s", t.scalar_encode},
                       {"scalar_to_float_per_s", t.scalar_decode},
                       {"convert_per_s", t.encode},
                       {"to_float_per_s", t.decode}};
  }
  return j;
}

int run_formats(const formats_options& opt) {
  bool known = opt.only.empty();
  lowbit::for_each_format(lowbit::all_float_formats{}, [&](auto t) {
    if (lowbit::format_traits<decltype(t)>::name == opt.only) known = true;
  });
  if (!known)
    throw lowbit::error("formats: unknown format '" + opt.only +
                        "' (expected float8_e4m3fn, float8_e5m2, float6_e3m2fn, float6_e2m3fn, "
                        "float4_e2m1fn or float8_e8m0fnu)");
  if (opt.json) {
    nlohmann::json j = {{"isa_tier", lowbit::to_string(lowbit::selected_isa_tier())}};
    auto& arr = j["formats"] = nlohmann::json::array();
    lowbit::for_each_format(lowbit::all_float_formats{}, [&](auto t) {
      using T = decltype(t);
      if (opt.only.empty() || lowbit::format_traits<T>::name == opt.only) arr.push_back(format_json<T>(opt));
    });
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  if (opt.throughput)
    fmt::print("ISA tier: {} (conversion throughput over {} elements in L1, ~{} ms a measurement)\n\n",
               lowbit::to_string(lowbit::selected_isa_tier()), 4096, opt.seconds * 1000);
  lowbit::for_each_format(lowbit::all_float_formats{}, [&](auto t) {
    using T = decltype(t);
    if (!opt.only.empty() && lowbit::format_traits<T>::name != opt.only) return;
    print_header<T>();
    if constexpr (std::is_same_v<T, lowbit::float8_e8m0fnu>)
      print_e8m0_table();
    else
      print_signed_table<T>();
    if (opt.throughput) print_throughput<T>(opt.seconds);
    fmt::print("\n");
  });
  return 0;
}

lowbit_cli::registration formats_registration{
    "formats", "Print every number format's value table and its conversion throughput", 90,
    [](CLI::App& sub) -> lowbit_cli::run_fn {
      auto opt = std::make_shared<formats_options>();
      sub.add_option("--format", opt->only, "Only this format (e.g. float4_e2m1fn)");
      sub.add_flag("!--no-throughput", opt->throughput, "Skip the throughput measurement");
      sub.add_flag("--json", opt->json, "Print JSON instead of the tables (values by code; 'nan', 'inf' as strings)");
      return [opt]() { return run_formats(*opt); };
    }};

}  // namespace
