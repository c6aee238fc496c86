# Runs the -march=x86-64-v4 test build (tests/CMakeLists.txt, LOWBIT_TEST_X86_64_V4) under
# LOWBIT_ISA=${ISA}, on a CPU with every x86-64-v4 feature. Elsewhere the binary would stop at
# its first AVX-512 instruction, so the test prints a SKIPPED line (scripts/test.sh lists those
# in its summary) and passes: it has nothing it could run.
#   cmake -DTESTS=<lowbit_tests_v4> -DISA=<best|avx2|...> -P run_x86_64_v4.cmake
set(cpuinfo "")
if(EXISTS /proc/cpuinfo)
  file(STRINGS /proc/cpuinfo cpuinfo REGEX "^flags" LIMIT_COUNT 1)
endif()
set(missing "")
foreach(flag avx512f avx512bw avx512cd avx512dq avx512vl)
  if(NOT cpuinfo MATCHES "[ \t]${flag}([ \t]|$)")
    list(APPEND missing ${flag})
  endif()
endforeach()
if(missing)
  string(REPLACE ";" " " missing "${missing}")
  message("SKIPPED: the -march=x86-64-v4 test build needs an AVX-512 CPU (missing: ${missing})")
  return()
endif()
set(ENV{LOWBIT_ISA} ${ISA})
execute_process(COMMAND ${TESTS} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the -march=x86-64-v4 test build failed under LOWBIT_ISA=${ISA} (exit ${rc})")
endif()
message("the -march=x86-64-v4 test build passed under LOWBIT_ISA=${ISA}")
