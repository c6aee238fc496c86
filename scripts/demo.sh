#!/usr/bin/env bash
# Build lowbit's command-line program in Release and run its built-in demo.
#
#   scripts/demo.sh [extra arguments for `lowbit demo`]
#
# Installs missing Debian packages when run as root (otherwise prints the apt-get line and
# stops), configures and builds into build/ (LOWBIT_BUILD_DIR overrides), then runs
# `build/examples/lowbit demo`. Only the program is built, so this takes a minute or two,
# not the full test suite; scripts/test.sh builds and runs everything else.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(lowbit_root)
cd "$root"

lowbit_ensure_packages "${LOWBIT_BASE_PACKAGES[@]}"

build_dir=${LOWBIT_BUILD_DIR:-build}
jobs=$(lowbit_jobs)

lowbit_log "configuring Release build in $build_dir/"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ||
  lowbit_die "cmake configure failed (see the messages above)"
lowbit_log "building the lowbit program with $jobs jobs"
cmake --build "$build_dir" --target lowbit_cli -j "$jobs" ||
  lowbit_die "build of the lowbit program failed (see the compiler messages above)"

program="$build_dir/examples/lowbit"
[[ -x "$program" ]] || lowbit_die "$program was not built"

# `lowbit demo` is the built-in default. While a tree predates the demo subcommand, fall
# back to `lowbit formats` (the format tables and conversion throughput).
if "$program" demo --help >/dev/null 2>&1; then
  lowbit_log "running: $program demo $*"
  exec "$program" demo "$@"
fi
lowbit_log "this build has no 'demo' subcommand yet; running: $program formats $*"
exec "$program" formats "$@"
