#!/usr/bin/env bash
# Streaming benchmark: generate a synthetic checkpoint of SIZE_GB, quantize it under
# /usr/bin/time -v, and report peak RSS against the input file size.
#   scripts/bench_streaming.sh [SIZE_GB=2] [DTYPE=f32] [extra quantize flags...]
# Env: LOWBIT (path to the lowbit binary, default build/examples/lowbit), WORKDIR (scratch
# directory, default a fresh mktemp -d; removed at the end unless KEEP=1).
set -euo pipefail
SIZE_GB=${1:-2}
DTYPE=${2:-f32}
shift $(( $# >= 2 ? 2 : $# ))
LOWBIT=${LOWBIT:-build/examples/lowbit}
WORKDIR=${WORKDIR:-$(mktemp -d)}
[ -x "$LOWBIT" ] || { echo "bench_streaming: no lowbit binary at $LOWBIT (set LOWBIT=...)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_streaming: needs /usr/bin/time (GNU time)" >&2; exit 1; }
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$WORKDIR"; }
trap cleanup EXIT

in="$WORKDIR/synthetic.safetensors"
out="$WORKDIR/quantized.safetensors"
"$LOWBIT" synth "$in" --size-gb "$SIZE_GB" --dtype "$DTYPE"
/usr/bin/time -v "$LOWBIT" quantize "$in" -o "$out" --quiet "$@" > "$WORKDIR/table.txt" 2> "$WORKDIR/time.txt" || {
  cat "$WORKDIR/time.txt" >&2; exit 1; }
tail -n 2 "$WORKDIR/table.txt"
in_bytes=$(stat -c %s "$in")
out_bytes=$(stat -c %s "$out")
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORKDIR/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORKDIR/time.txt")
awk -v i="$in_bytes" -v o="$out_bytes" -v r="$rss_kb" -v w="$wall" 'BEGIN {
  printf "input  %.3f GB\noutput %.3f GB\npeak RSS %.1f MB\npeak RSS / input size = %.4f\nwall %s\n",
         i / 1e9, o / 1e9, r * 1024 / 1e6, r * 1024 / i, w }'
