# The integer sub-tiers for CPUs without VNNI must hold no VNNI instruction, whatever the
# compiler makes of them: clang fused their VPMADDWD + VPADDD into VPDPWSSD while the kernels
# carried a VNNI target (kernels/x86/avx512_int.hpp). The test compiles their entry points
# alone (tests/isa/non_vnni_subtiers.cpp) with this build's compiler and with clang++ when it
# is installed, at -O1 to -O3, and greps the disassembly. x86-64 only; needs objdump.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND NOT CMAKE_CROSSCOMPILING)
  find_program(LOWBIT_OBJDUMP objdump)
  find_program(LOWBIT_CLANGXX clang++)
  set(_isa_compilers ${CMAKE_CXX_COMPILER})
  if(LOWBIT_CLANGXX AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    list(APPEND _isa_compilers ${LOWBIT_CLANGXX})
  endif()
  if(LOWBIT_OBJDUMP)
    lowbit_test_dir(_isa_dir isa)
    # Lists travel to the script joined by '|' (a ';' would split the -D argument).
    string(REPLACE ";" "|" _isa_compilers_arg "${_isa_compilers}")
    add_test(NAME isa_non_vnni_subtiers
             COMMAND ${CMAKE_COMMAND} "-DCOMPILERS=${_isa_compilers_arg}"
                     -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/isa/non_vnni_subtiers.cpp
                     "-DFLAGS=-I${PROJECT_SOURCE_DIR}/include|-isystem|${EIGEN3_INCLUDE_DIR}"
                     -DOBJDUMP=${LOWBIT_OBJDUMP} -DWORK=${_isa_dir} "-DFORBIDDEN=vpdp"
                     "-DREQUIRED=vpmaddubsw"
                     -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/isa_check.cmake)
  else()
    message(STATUS "lowbit: no objdump, so the test isa_non_vnni_subtiers is not registered")
  endif()
endif()
