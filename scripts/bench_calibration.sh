#!/usr/bin/env bash
# Memory benchmark of sequential calibration (issue 11): a synthetic Llama-3.2-1B-shaped BF16
# Hugging Face directory (lowbit synth --shape llama-3.2-1b: about 2.5 GB, plus the
# Llama-3-style tokenizer.json of ../shared/data/tokenizers copied in at run time), quantized
# with GPTQ calibrated on text, under /usr/bin/time -v: prints peak RSS and wall time.
#   scripts/bench_calibration.sh [extra quantize flags...]
# Env: LOWBIT (the lowbit binary, default build/examples/lowbit), DATA (default
# ../shared/data), WORKDIR (scratch, default a fresh mktemp -d; removed unless KEEP=1),
# SAMPLES (32), SEQ_LEN (512), RECIPE (w4a16-int4), LAYERS (decoder layers of the synthetic
# model, default the full 16; the peak is per layer, so LAYERS=2 shows it in a fraction of the time).
set -euo pipefail
LOWBIT=${LOWBIT:-build/examples/lowbit}
DATA=${DATA:-../shared/data}
WORKDIR=${WORKDIR:-$(mktemp -d)}
SAMPLES=${SAMPLES:-32}
SEQ_LEN=${SEQ_LEN:-512}
RECIPE=${RECIPE:-w4a16-int4}
LAYERS=${LAYERS:-16}
[ -x "$LOWBIT" ] || { echo "bench_calibration: no lowbit binary at $LOWBIT (set LOWBIT=...)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_calibration: needs /usr/bin/time (GNU time)" >&2; exit 1; }
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$WORKDIR"; }
trap cleanup EXIT

model="$WORKDIR/llama-3.2-1b-synthetic-$LAYERS"
[ -f "$model/model.safetensors" ] ||
  "$LOWBIT" synth "$model" --shape llama-3.2-1b --layers "$LAYERS" --tokenizer "$DATA/tokenizers/llama3_style_tokenizer.json"
text="$DATA/stories260k/tinystories_validation_head_794k.txt"
/usr/bin/time -v "$LOWBIT" quantize "$model" -o "$WORKDIR/out/" --recipe "$RECIPE" --calib "$text" \
  --calib-samples "$SAMPLES" --calib-seq-len "$SEQ_LEN" "$@" > "$WORKDIR/table.txt" 2> "$WORKDIR/time.txt" || {
  tail -n 20 "$WORKDIR/time.txt" >&2; exit 1; }
grep -E '^(scheme|calibration)' "$WORKDIR/table.txt" || true
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORKDIR/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORKDIR/time.txt")
in_bytes=$(stat -c %s "$model/model.safetensors")
awk -v i="$in_bytes" -v r="$rss_kb" -v w="$wall" 'BEGIN {
  printf "input %.3f GB\npeak RSS %.1f MB (%.3f GB)\nwall %s\n", i / 1e9, r * 1024 / 1e6, r * 1024 / 1e9, w }'
