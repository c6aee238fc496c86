#!/usr/bin/env bash
# Build lowbit's command-line program in Release and run its built-in demo.
#
#   scripts/demo.sh [extra arguments for `lowbit demo`]
#
# Installs missing Debian packages when run as root (otherwise prints the apt-get line and
# stops), configures and builds into build/ (LOWBIT_BUILD_DIR overrides; LOWBIT_CMAKE_ARGS adds
# configure arguments), then runs
# `build/examples/lowbit demo`. Only the program is built, so this takes a minute or two,
# not the full test suite; scripts/test.sh builds and runs everything else.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(lowbit_root)
cd "$root"

lowbit_ensure_packages "${LOWBIT_BASE_PACKAGES[@]}"

build_dir=${LOWBIT_BUILD_DIR:-build}
# Extra configure arguments for local use, split on spaces (e.g. "-DCMAKE_CXX_COMPILER=clang++").
read -r -a extra_cmake_args <<<"${LOWBIT_CMAKE_ARGS:-}"
jobs=$(lowbit_jobs)

lowbit_log "configuring Release build in $build_dir/"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  ${extra_cmake_args[@]+"${extra_cmake_args[@]}"} ||
  lowbit_die "cmake configure failed (see the messages above)"
lowbit_log "building the lowbit program with $jobs jobs"
cmake --build "$build_dir" --target lowbit_cli -j "$jobs" ||
  lowbit_die "build of the lowbit program failed (see the compiler messages above)"

program="$build_dir/examples/lowbit"
[[ -x "$program" ]] || lowbit_die "$program was not built"

# `lowbit demo` is the built-in default. While a tree predates the demo subcommand, fall
# back to `lowbit formats` (the format tables and conversion throughput). The check reads
# the Subcommands list of `lowbit --help`: `lowbit demo --help` is no test, because CLI11
# handles --help before it rejects the unknown word and so exits 0 either way.
has_subcommand() {
  "$program" --help 2>/dev/null |
    awk -v name="$1" '/^Subcommands:/ { listing = 1; next } listing && $1 == name { found = 1 }
                      END { exit !found }'
}
for cmd in demo formats; do
  if has_subcommand "$cmd"; then
    lowbit_log "running: $program $cmd $*"
    exec "$program" "$cmd" "$@"
  fi
done
lowbit_die "$program has neither a 'demo' nor a 'formats' subcommand"
