# shellcheck shell=bash
# Shared shell logic for scripts/demo.sh and scripts/test.sh. Source it; do not run it.
#
#   lowbit_root                  the repository root (this file's parent's parent)
#   lowbit_log / lowbit_die      messages on stderr, the latter exits non-zero
#   lowbit_ensure_packages P...  installs the Debian packages P that are missing (as root), or
#                                prints the one apt-get line needed and exits non-zero
#   lowbit_jobs                  parallel build jobs: LOWBIT_JOBS, else nproc
#   lowbit_stage_begin / _end    named stages with wall-clock timings, and a summary table

# The packages every build needs (compiler, CMake, and the libraries CMakeLists.txt finds;
# PCRE2 and utf8proc are optional there, for tokenizer.json support, but CI tests it).
# shellcheck disable=SC2034  # the package lists are used by the scripts that source this
LOWBIT_BASE_PACKAGES=(cmake g++ libeigen3-dev catch2 libcli11-dev libfmt-dev libbenchmark-dev
                      nlohmann-json3-dev libpcre2-dev libutf8proc-dev)
# The extra packages scripts/test.sh needs: the aarch64 cross compiler and qemu-user to run
# its output, and clang with its runtime libraries for the sanitizer stage and libFuzzer.
# shellcheck disable=SC2034
LOWBIT_ARM_PACKAGES=(g++-aarch64-linux-gnu qemu-user-static)
# shellcheck disable=SC2034
LOWBIT_CLANG_PACKAGES=(clang libclang-rt-14-dev)
# shellcheck disable=SC2034
LOWBIT_FUZZ_PACKAGES=("${LOWBIT_CLANG_PACKAGES[@]}")

lowbit_root() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

lowbit_log() {
  printf '[lowbit] %s\n' "$*" >&2
}

lowbit_die() {
  printf '[lowbit] ERROR: %s\n' "$*" >&2
  exit 1
}

# Prints the packages among "$@" that dpkg does not report as installed.
lowbit_missing_packages() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

lowbit_ensure_packages() {
  command -v dpkg-query >/dev/null 2>&1 ||
    lowbit_die "dpkg-query not found: these scripts expect Debian (bookworm) or a derivative"
  local missing
  mapfile -t missing < <(lowbit_missing_packages "$@")
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ "$(id -u)" != 0 ]]; then
    lowbit_log "missing Debian packages: ${missing[*]}"
    lowbit_log "install them (as root) with:"
    printf 'apt-get install -y %s\n' "${missing[*]}"
    exit 1
  fi
  lowbit_log "installing missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update || lowbit_die "apt-get update failed"
  apt-get install -y --no-install-recommends "${missing[@]}" ||
    lowbit_die "apt-get install ${missing[*]} failed"
}

lowbit_jobs() {
  if [[ -n "${LOWBIT_JOBS:-}" ]]; then
    printf '%s\n' "$LOWBIT_JOBS"
  else
    nproc 2>/dev/null || printf '2\n'
  fi
}

# Stage timing. lowbit_stage_begin NAME prints a banner and starts a clock; lowbit_stage_end
# records the elapsed wall seconds and the CPU seconds of the commands it ran;
# lowbit_print_stage_times prints them all. CPU time says what a stage costs on an idle
# machine: on a busy shared one, wall time mostly measures the neighbours.
LOWBIT_STAGE_NAMES=()
LOWBIT_STAGE_SECONDS=()
LOWBIT_STAGE_CPU_SECONDS=()
LOWBIT_CURRENT_STAGE=""
LOWBIT_CURRENT_STAGE_START=0
LOWBIT_CURRENT_STAGE_CPU_START=0

# Sets LOWBIT_CHILDREN_CPU_MS to the CPU milliseconds (user + system) used so far by this
# shell's finished child processes. `times` is a builtin that must run in this shell (a
# subshell from a pipe or $(...) would report only its own, empty, children), hence a file
# and a global rather than an output.
LOWBIT_CHILDREN_CPU_MS=0
lowbit_read_children_cpu() {
  local file="${TMPDIR:-/tmp}/lowbit-times.$$" user sys
  times >"$file"
  { read -r _ _ && read -r user sys; } <"$file"
  rm -f "$file"
  LOWBIT_CHILDREN_CPU_MS=$(($(lowbit_duration_ms "$user") + $(lowbit_duration_ms "$sys")))
}

# "1m2.345s" -> 62345
lowbit_duration_ms() {
  local t=${1%s} minutes seconds whole frac
  minutes=${t%%m*}
  seconds=${t#*m}
  whole=${seconds%%.*}
  frac=${seconds#*.}
  frac=${frac}000
  frac=${frac:0:3}
  printf '%d\n' $((10#$minutes * 60000 + 10#$whole * 1000 + 10#$frac))
}

lowbit_stage_begin() {
  LOWBIT_CURRENT_STAGE="$1"
  LOWBIT_CURRENT_STAGE_START=$SECONDS
  lowbit_read_children_cpu
  LOWBIT_CURRENT_STAGE_CPU_START=$LOWBIT_CHILDREN_CPU_MS
  printf '\n==== [%s] %s ====\n' "$(date +%H:%M:%S)" "$1"
}

lowbit_stage_end() {
  local elapsed=$((SECONDS - LOWBIT_CURRENT_STAGE_START))
  lowbit_read_children_cpu
  local cpu=$(((LOWBIT_CHILDREN_CPU_MS - LOWBIT_CURRENT_STAGE_CPU_START) / 1000))
  LOWBIT_STAGE_NAMES+=("$LOWBIT_CURRENT_STAGE")
  LOWBIT_STAGE_SECONDS+=("$elapsed")
  LOWBIT_STAGE_CPU_SECONDS+=("$cpu")
  printf '==== %s: done in %dm%02ds (CPU %dm%02ds) ====\n' "$LOWBIT_CURRENT_STAGE" \
    $((elapsed / 60)) $((elapsed % 60)) $((cpu / 60)) $((cpu % 60))
  LOWBIT_CURRENT_STAGE=""
}

lowbit_print_stage_times() {
  local i s c total=0 total_cpu=0
  printf '\nStage timings (wall clock; CPU = user+system of all processes):\n'
  for i in "${!LOWBIT_STAGE_NAMES[@]}"; do
    s=${LOWBIT_STAGE_SECONDS[$i]}
    c=${LOWBIT_STAGE_CPU_SECONDS[$i]}
    total=$((total + s))
    total_cpu=$((total_cpu + c))
    printf '  %-36s %4dm%02ds   CPU %4dm%02ds\n' "${LOWBIT_STAGE_NAMES[$i]}" \
      $((s / 60)) $((s % 60)) $((c / 60)) $((c % 60))
  done
  if [[ -n "$LOWBIT_CURRENT_STAGE" ]]; then
    s=$((SECONDS - LOWBIT_CURRENT_STAGE_START))
    total=$((total + s))
    printf '  %-36s %4dm%02ds   (stopped here)\n' "$LOWBIT_CURRENT_STAGE" $((s / 60)) $((s % 60))
  fi
  printf '  %-36s %4dm%02ds   CPU %4dm%02ds\n' "total" $((total / 60)) $((total % 60)) \
    $((total_cpu / 60)) $((total_cpu % 60))
}
