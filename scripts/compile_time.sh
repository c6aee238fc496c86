#!/usr/bin/env bash
# Compile time of lowbit's headers for a user (issue 15, item 24): the README's two-line
# program, once per public header, compiled with `g++ -O2 -std=c++17 -c`; prints wall seconds,
# the ratio to lowbit/formats.hpp measured in the same run (a machine-independent figure: the
# issue's targets, 4 s for the umbrella and 2.5 s per layer header, are 8x and 5x formats.hpp's
# 0.5 s on the issuer's machine) and peak compiler memory (MiB; the steadiest figure on a
# loaded machine). With RUNS=n each header is compiled n times and the median is printed.
# It records, it never fails (exit 0 even when a header fails to compile: the row then says
# so). Numbers: docs/performance.md.
#
#   [RUNS=3] [HEADERS="lowbit.hpp algo/lorc.hpp"] scripts/compile_time.sh [CXX] [extra flags...]
#   (default CXX: g++; HEADERS are paths under include/lowbit/)
set -u
cd "$(dirname "$0")/.."
cxx=${1:-g++}
shift || true
runs=${RUNS:-1}
headers=${HEADERS:-"lowbit.hpp formats.hpp quant.hpp algo.hpp gemm.hpp io.hpp model.hpp"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure HEADER: prints "seconds kib" (medians) or "failed"
measure() {
  printf '#include <lowbit/%s>\nint main() { return 0; }\n' "$1" > "$tmp/main.cpp"
  shift
  : > "$tmp/secs"
  : > "$tmp/kib"
  for ((i = 0; i < runs; ++i)); do
    if ! /usr/bin/time -f '%e %M' -o "$tmp/time" "$cxx" -O2 -std=c++17 -Iinclude $eigen "$@" \
         -c "$tmp/main.cpp" -o "$tmp/main.o" 2> "$tmp/err"; then
      echo failed
      return
    fi
    read -r secs kib < "$tmp/time"
    echo "$secs" >> "$tmp/secs"
    echo "$kib" >> "$tmp/kib"
  done
  echo "$(median < "$tmp/secs") $(median < "$tmp/kib")"
}

read -r base _ <<< "$(measure formats.hpp "$@")"
printf '%-28s %8s %8s %10s\n' header seconds "x formats" "peak MiB"
for h in $headers; do
  result=$(measure "$h" "$@")
  if [ "$result" = failed ]; then
    printf '%-28s %8s %8s %10s\n' "lowbit/$h" failed - -
    continue
  fi
  read -r secs kib <<< "$result"
  ratio=$(awk -v s="$secs" -v b="$base" 'BEGIN { if (b + 0 > 0) printf "%.1f", s / b; else print "-" }')
  printf '%-28s %8s %8s %10d\n' "lowbit/$h" "$secs" "$ratio" $((${kib%.*} / 1024))
done
exit 0
