#!/usr/bin/env bash
# Build and test lowbit the way CI does (.ci/run calls this on a fresh clone).
#
#   scripts/test.sh
#
# Stages, in order (LOWBIT_TEST_STAGES=native,asan,arm,fuzz selects some; default all):
#   native  Release, -Wall -Wextra -Werror, tests + CLI + benchmarks, every test through CTest
#           (including the find_package / add_subdirectory consumer projects, and on x86-64
#           the kernel/format/algorithm tests built again with -march=x86-64-v4, run where the
#           CPU has AVX-512)
#   asan    the tests again, built by clang, under AddressSanitizer + UndefinedBehaviorSanitizer
#           (-O0 -g1)
#   arm     the tests cross-built for aarch64 and run under qemu-user, so NEON code really runs
#   fuzz    each fuzz/fuzz_*.cpp built with clang's libFuzzer and run for a bounded time
#
# Other knobs: LOWBIT_TEST_BUILD_ROOT (default build-test; one sub-directory per stage),
# LOWBIT_JOBS (default nproc), LOWBIT_FUZZ_SECONDS (wall seconds of the fuzz run; every
# target runs at once, default 60),
# LOWBIT_CTEST_TIMEOUT (seconds per test, default 1200), LOWBIT_CMAKE_ARGS (extra arguments
# for every configure, split on spaces, e.g. "-DLOWBIT_TEST_GLOB=test_formats*" locally, or
# "-DLOWBIT_TEST_UNITY=OFF" to compile every test file on its own, see tests/CMakeLists.txt).
#
# Any failure stops the script with a message naming the stage. The output ends with the
# stage timings and CTest's closing summary lines.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(lowbit_root)
cd "$root"

all_stages=(native asan arm fuzz)
IFS=',' read -r -a stages <<<"${LOWBIT_TEST_STAGES:-native,asan,arm,fuzz}"
for s in "${stages[@]}"; do
  [[ " ${all_stages[*]} " == *" $s "* ]] ||
    lowbit_die "LOWBIT_TEST_STAGES: unknown stage '$s' (known: ${all_stages[*]})"
done
wants() { [[ ",${LOWBIT_TEST_STAGES:-native,asan,arm,fuzz}," == *",$1,"* ]]; }

# Ninja schedules every object of every target at once (Make goes target by target): the
# native build's big unity objects then keep both cores busy to the end.
packages=("${LOWBIT_BASE_PACKAGES[@]}" ninja-build)
if wants asan; then packages+=("${LOWBIT_CLANG_PACKAGES[@]}"); fi
if wants arm; then packages+=("${LOWBIT_ARM_PACKAGES[@]}"); fi
if wants fuzz; then packages+=("${LOWBIT_FUZZ_PACKAGES[@]}"); fi
lowbit_ensure_packages "${packages[@]}"

build_root=${LOWBIT_TEST_BUILD_ROOT:-build-test}
jobs=$(lowbit_jobs)
ctest_timeout=${LOWBIT_CTEST_TIMEOUT:-1200}
read -r -a extra_cmake_args <<<"${LOWBIT_CMAKE_ARGS:-}"
mkdir -p "$build_root"
build_root=$(cd "$build_root" && pwd)

lowbit_log "stages: ${stages[*]}; build root: $build_root; jobs: $jobs"
lowbit_log "host: $(uname -m), $(nproc) CPUs, $(g++ --version | head -n1)"

# Closing summary lines of every CTest run, printed again at the very end.
ctest_logs=()

# Runs "$@"; on failure stops the script naming the current stage and what failed.
step() {
  local what=$1
  shift
  if ! "$@"; then
    lowbit_print_stage_times
    lowbit_die "stage '$LOWBIT_CURRENT_STAGE' failed: $what (see the messages above)"
  fi
}

# Prints CTest's closing lines from a log: the pass/fail count, total time, failed tests.
ctest_summary() {
  sed -n -e '/tests passed, .* tests failed out of/,$p' "$1"
}

# run_ctest STAGE DIR [extra ctest args]: runs CTest, keeps its output in DIR/ctest.log.
run_ctest() {
  local stage=$1 dir=$2
  shift 2
  local log="$dir/ctest.log"
  ctest_logs+=("$stage:$log")
  # --no-tests=error: a stage that finds no tests has a broken glob, not a clean bill.
  if ! (cd "$dir" && ctest --output-on-failure --no-tests=error -j "$jobs" \
    --timeout "$ctest_timeout" "$@") 2>&1 |
    tee "$log"; then
    lowbit_print_stage_times
    printf '\n' >&2
    lowbit_log "stage '$stage' failed: some tests failed (output above). CTest summary:"
    ctest_summary "$log"
    exit 1
  fi
}

if wants native; then
  lowbit_stage_begin "native: configure + build"
  dir="$build_root/native"
  step "cmake configure" cmake -G Ninja -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON \
    -DLOWBIT_BUILD_TESTS=ON -DLOWBIT_BUILD_EXAMPLES=ON -DLOWBIT_BUILD_BENCHMARKS=ON \
    -DLOWBIT_TEST_X86_64_V4=ON ${extra_cmake_args[@]+"${extra_cmake_args[@]}"}
  step "build with -Werror" cmake --build "$dir" -j "$jobs"
  lowbit_stage_end
  lowbit_stage_begin "native: ctest"
  run_ctest native "$dir"
  lowbit_stage_end
fi

if wants asan; then
  lowbit_stage_begin "asan+ubsan: configure + build"
  dir="$build_root/asan"
  # Built by clang, not GCC: the native stage already holds the code to GCC's -Werror, and
  # this stage compiles every test again. clang compiles it 2.6x faster here (the io group,
  # -O0 -g1 with both sanitizers: 60 s of CPU against 155 s with g++ 12), and it checks that
  # a clang user can build lowbit (Debian 12's clang 14; LOWBIT_HAVE_AVX512FP16 in
  # detail/target.hpp leaves out the AVX512-FP16 path it cannot compile). No build type:
  # these flags are the whole optimisation/debug set. Warnings are not errors here (the native
  # stage's job). -O0: the instrumented optimiser would cost more compile time than the tests
  # save running. -g1 (line tables only): the sanitizers' reports still name file and line of
  # every frame, and full debug information of Eigen's and Catch2's templates was a quarter
  # of the compile.
  sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  step "cmake configure" cmake -G Ninja -S . -B "$dir" -DCMAKE_BUILD_TYPE= \
    -DCMAKE_CXX_COMPILER=clang++ \
    "-DCMAKE_CXX_FLAGS=-O0 -g1 $sanitize" \
    "-DCMAKE_EXE_LINKER_FLAGS=$sanitize" \
    -DLOWBIT_BUILD_TESTS=ON -DLOWBIT_BUILD_EXAMPLES=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF \
    -DLOWBIT_TEST_CONSUMERS=OFF ${extra_cmake_args[@]+"${extra_cmake_args[@]}"}
  step "build" cmake --build "$dir" -j "$jobs"
  lowbit_stage_end
  lowbit_stage_begin "asan+ubsan: ctest"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest asan "$dir"
  lowbit_stage_end
fi

if wants arm; then
  lowbit_stage_begin "aarch64: configure + cross-build"
  dir="$build_root/aarch64"
  step "cmake configure (aarch64 toolchain)" cmake -G Ninja -S . -B "$dir" \
    -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake" \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=qemu-aarch64-static;-L;/usr/aarch64-linux-gnu" \
    -DCMAKE_BUILD_TYPE=Release -DLOWBIT_WERROR=ON \
    -DLOWBIT_BUILD_TESTS=ON -DLOWBIT_BUILD_EXAMPLES=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF \
    ${extra_cmake_args[@]+"${extra_cmake_args[@]}"}
  step "cross-build" cmake --build "$dir" -j "$jobs"
  if command -v file >/dev/null 2>&1; then
    file "$dir/tests/lowbit_tests" | grep -q 'ARM aarch64' ||
      lowbit_die "stage 'aarch64': $dir/tests/lowbit_tests is not an aarch64 executable"
  fi
  lowbit_stage_end
  lowbit_stage_begin "aarch64: ctest under qemu"
  run_ctest aarch64 "$dir"
  lowbit_stage_end
fi

if wants fuzz; then
  shopt -s nullglob
  fuzz_sources=(fuzz/fuzz_*.cpp)
  shopt -u nullglob
  # Every target builds and runs at the same time (libFuzzer is one process on one core, so
  # one after another left the second core idle): the stage's wall time is about the build
  # plus LOWBIT_FUZZ_SECONDS (default 60), and each target gets 60 x cores / targets seconds
  # of CPU (40 for 3 targets on 2 cores, what the sequential 40 s each gave before).
  fuzz_seconds=${LOWBIT_FUZZ_SECONDS:-60}
  lowbit_stage_begin "fuzz: libFuzzer (${#fuzz_sources[@]} targets at once, ${fuzz_seconds}s)"
  if ((${#fuzz_sources[@]} == 0)); then
    printf 'No fuzz targets (fuzz/fuzz_*.cpp) in this tree; skipping the fuzz stage.\n'
  else
    dir="$build_root/fuzz"
    mkdir -p "$dir"
    names=() pids=() works=()
    for src in "${fuzz_sources[@]}"; do
      name=$(basename "$src" .cpp)
      # A target may name extra flags (defines, libraries) on a line of its own:
      #   // lowbit-fuzz-flags: -DLOWBIT_HAVE_HF_TOKENIZER=1 -lpcre2-8 -lutf8proc
      read -r -a extra_flags <<<"$(sed -n 's|^// lowbit-fuzz-flags:||p' "$src" | head -n1)"
      printf -- '--- %s: build%s\n' "$name" "${extra_flags[*]:+ (${extra_flags[*]})}"
      clang++ -std=c++17 -g -O1 \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Iinclude -I/usr/include/eigen3 "$src" -o "$dir/$name" \
        ${extra_flags[@]+"${extra_flags[@]}"} >"$dir/$name.build.log" 2>&1 &
      names+=("$name") pids+=($!)
    done
    for i in "${!names[@]}"; do
      if ! wait "${pids[$i]}"; then
        cat "$dir/${names[$i]}.build.log"
        lowbit_print_stage_times
        lowbit_die "stage 'fuzz' failed: clang++ libFuzzer build of fuzz/${names[$i]}.cpp (messages above)"
      fi
    done
    pids=()
    for name in "${names[@]}"; do
      # New inputs go to a scratch corpus (listed first), never into the checked-in seeds;
      # crash reproducers go to a temporary directory that is kept when something is found.
      work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-$name.XXXXXX")
      mkdir -p "$work/corpus" "$work/crashes"
      corpora=("$work/corpus")
      if [[ -d "fuzz/corpus/$name" ]]; then corpora+=("fuzz/corpus/$name"); fi
      printf -- '--- %s: run for %ss (seeds: %s)\n' "$name" "$fuzz_seconds" \
        "$([[ -d fuzz/corpus/$name ]] && echo "fuzz/corpus/$name" || echo none)"
      "$dir/$name" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
        -artifact_prefix="$work/crashes/" "${corpora[@]}" 2>"$work/fuzz.log" &
      works+=("$work") pids+=($!)
    done
    failed=()
    for i in "${!names[@]}"; do
      if ! wait "${pids[$i]}"; then failed+=("$i"); fi
    done
    for i in "${!names[@]}"; do
      printf -- '--- %s:\n' "${names[$i]}"
      grep -E '^(#[0-9]+.*DONE|Done [0-9]+ runs|stat::number_of_executed_units)' "${works[$i]}/fuzz.log" || true
    done
    if ((${#failed[@]} > 0)); then
      for i in "${failed[@]}"; do
        printf -- '--- %s found a crash:\n' "${names[$i]}"
        tail -n 60 "${works[$i]}/fuzz.log"
      done
      lowbit_print_stage_times
      i=${failed[0]}
      lowbit_die "stage 'fuzz': ${names[$i]} found a crash; reproducer(s) in ${works[$i]}/crashes/:" \
        "$(ls "${works[$i]}/crashes")." \
        "Rerun with: $dir/${names[$i]} ${works[$i]}/crashes/<file>"
    fi
    for w in "${works[@]}"; do rm -rf "$w"; done
  fi
  lowbit_stage_end
fi

lowbit_print_stage_times
printf '\nCTest summaries:\n'
for entry in "${ctest_logs[@]}"; do
  printf '  %-8s %s\n' "${entry%%:*}" "$(grep -E 'tests passed, .* tests failed out of' "${entry#*:}" | tail -n1)"
  # Which kernel tiers each stage really ran, and what it skipped (the tests print these as
  # Catch2 warnings; CTest keeps passing tests' output only in LastTest.log): a tier that is
  # not listed was not tested in that stage.
  full_log="$(dirname "${entry#*:}")/Testing/Temporary/LastTest.log"
  if [[ -f "$full_log" ]]; then
    # (Catch2 wraps a warning over indented lines: join them.)
    awk '/^ *(SKIPPED: |AMX-INT8 tests RAN: |integer-kernel sub-tiers this CPU runs|the -march=x86-64-v4 test build passed)/ {
           if (grab) print msg; msg = $0; sub(/^ +/, "", msg); grab = 1; next }
         grab && /^  +[^ ]/ { l = $0; sub(/^ +/, "", l); msg = msg " " l; next }
         grab { print msg; grab = 0 }
         END { if (grab) print msg }' "$full_log" | sort -u | sed 's/^/             /' || true
  fi
done
# Last of all, CTest's own closing lines (the native run's when it ran: it has every test).
if ((${#ctest_logs[@]} > 0)); then
  final="${ctest_logs[0]#*:}"
  printf '\n'
  ctest_summary "$final"
fi
