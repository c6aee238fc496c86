#!/usr/bin/env bash
# Compile time of lowbit's headers for a user (issue 15, item 24): the README's two-line
# program, once per public header, compiled with `g++ -O2 -std=c++17 -c`; prints wall seconds
# and peak compiler memory (MiB) per header. It records, it never fails (exit 0 even when a
# header fails to compile: the row then says so). Numbers: docs/performance.md.
#
#   scripts/compile_time.sh [CXX] [extra flags...]     (default CXX: g++)
set -u
cd "$(dirname "$0")/.."
cxx=${1:-g++}
shift || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
printf '%-28s %8s %10s\n' header seconds "peak MiB"
for h in lowbit.hpp formats.hpp quant.hpp algo.hpp gemm.hpp io.hpp model.hpp; do
  printf '#include <lowbit/%s>\nint main() { return 0; }\n' "$h" > "$tmp/main.cpp"
  if /usr/bin/time -f '%e %M' -o "$tmp/time" "$cxx" -O2 -std=c++17 -Iinclude $eigen "$@" -c "$tmp/main.cpp" \
       -o "$tmp/main.o" 2> "$tmp/err"; then
    read -r secs kib < "$tmp/time"
    printf '%-28s %8s %10d\n' "lowbit/$h" "$secs" $((kib / 1024))
  else
    printf '%-28s %8s %10s\n' "lowbit/$h" "failed" "-"
  fi
done
exit 0
