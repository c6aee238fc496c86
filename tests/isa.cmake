# Checks on the machine code of the kernels, whatever the compiler makes of them. Each test
# compiles a probe (tests/isa/*.cpp), disassembles it and greps (tests/scripts/isa_check.cmake):
# on x86-64 with this build's compiler and with clang++ when it is installed; on AArch64
# (native or cross) with this build's compiler. Needs objdump for the target.
# - isa_non_vnni_subtiers: the integer sub-tiers for CPUs without VNNI hold no VNNI
#   instruction (clang fused their VPMADDWD + VPADDD into VPDPWSSD while the kernels carried a
#   VNNI target; kernels/x86/avx512_int.hpp), at -O1 to -O3.
# - isa_register_blocks_*: at -O2 and -O3, one function holds a whole unrolled register block
#   of the kernel's inner step, or (float) no array of vectors stays on the stack
#   (docs/design.md, "Register blocks are unrolled by pragma").
function(lowbit_isa_test name probe compilers objdump)
  lowbit_test_dir(dir isa)
  # Lists travel to the script joined by '|' (a ';' would split the -D argument).
  string(REPLACE ";" "|" compilers_arg "${compilers}")
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} "-DCOMPILERS=${compilers_arg}"
                   -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/isa/${probe}
                   "-DFLAGS=-I${PROJECT_SOURCE_DIR}/include|-isystem|${EIGEN3_INCLUDE_DIR}"
                   -DOBJDUMP=${objdump} -DWORK=${dir} ${ARGN}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/isa_check.cmake)
endfunction()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND NOT CMAKE_CROSSCOMPILING)
  find_program(LOWBIT_OBJDUMP objdump)
  find_program(LOWBIT_CLANGXX clang++)
  set(_isa_compilers ${CMAKE_CXX_COMPILER})
  if(LOWBIT_CLANGXX AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    list(APPEND _isa_compilers ${LOWBIT_CLANGXX})
  endif()
  if(LOWBIT_OBJDUMP)
    lowbit_isa_test(isa_non_vnni_subtiers non_vnni_subtiers.cpp "${_isa_compilers}" ${LOWBIT_OBJDUMP}
                    "-DFORBIDDEN=vpdp" "-DREQUIRED=vpmaddubsw")
    # int4 on VNNI: 8 tokens x 2 vectors x 2 nibble halves.
    lowbit_isa_test(isa_register_blocks_avx512_int register_blocks_x86.cpp "${_isa_compilers}" ${LOWBIT_OBJDUMP}
                    "-DLEVELS=-O2|-O3" "-DREQUIRED=vpdpbusd.*zmm" "-DFUNCTION=avx512_int" -DMIN_IN_FUNCTION=32)
    # The 16-bit classifier: 4 rows x 4 tokens of FMAs.
    lowbit_isa_test(isa_register_blocks_wide16 register_blocks_x86.cpp "${_isa_compilers}" ${LOWBIT_OBJDUMP}
                    "-DLEVELS=-O2|-O3" "-DREQUIRED=vfmadd...ps.*zmm" "-DFUNCTION=wide16" -DMIN_IN_FUNCTION=16)
    # The float family's one-token quad path (acc[8], p[8]) and the AVX2 tier's decode (v[4]):
    # at most 3 vector stack references in one of them with the pragmas, 24 (g++ -O2) without.
    lowbit_isa_test(isa_register_blocks_float register_blocks_float.cpp "${_isa_compilers}" ${LOWBIT_OBJDUMP}
                    "-DLEVELS=-O2|-O3" "-DREQUIRED=vpermps" "-DFUNCTION=direct_block_quad<|avx2_decode_rows"
                    -DMAX_STACK_IN_FUNCTION=12)
    # The forward pass's fp32 product (attention's QK^T and PV): tiles of 8 (AVX-512) and 6
    # (AVX2) rows x 2 vectors.
    lowbit_isa_test(isa_register_blocks_forward register_blocks_forward.cpp "${_isa_compilers}" ${LOWBIT_OBJDUMP}
                    "-DLEVELS=-O2|-O3" "-DREQUIRED=vfmadd...ps" "-DFUNCTION=gemm_tile<"
                    -DMAX_STACK_IN_FUNCTION=12)
  else()
    message(STATUS "lowbit: no objdump, so the tests isa_* are not registered")
  endif()
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  if(CMAKE_OBJDUMP)
    # int4: 2 tokens x 4 vectors x 2 nibble halves of SDOT; 8 column pairs x 2 halves of USMMLA.
    lowbit_isa_test(isa_register_blocks_neon_dot register_blocks_arm.cpp "${CMAKE_CXX_COMPILER}" ${CMAKE_OBJDUMP}
                    "-DLEVELS=-O2|-O3" "-DREQUIRED=[ \t]sdot[ \t]" "-DFUNCTION=neon_int_tile" -DMIN_IN_FUNCTION=16)
    lowbit_isa_test(isa_register_blocks_neon_i8mm register_blocks_arm.cpp "${CMAKE_CXX_COMPILER}" ${CMAKE_OBJDUMP}
                    "-DLEVELS=-O2|-O3" "-DREQUIRED=[ \t]usmmla[ \t]" "-DFUNCTION=neon_i8mm_tile" -DMIN_IN_FUNCTION=16)
  else()
    message(STATUS "lowbit: no objdump for this target, so the tests isa_* are not registered")
  endif()
endif()
