# Cross-compile for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu, so the NEON paths
# are built and (through qemu-user) tested on an x86 machine:
#
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DLOWBIT_BUILD_EXAMPLES=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF
#   cmake --build build-arm && ctest --test-dir build-arm
#
# lowbit's dependencies for the tests (Eigen, Catch2, nlohmann-json) are header-only and
# architecture-independent, so their CMake packages are taken from the host's /usr; only
# libraries (libstdc++, libpthread) must come from the aarch64 sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(LOWBIT_AARCH64_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${LOWBIT_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${LOWBIT_AARCH64_TRIPLE}-g++)

set(LOWBIT_AARCH64_SYSROOT /usr/${LOWBIT_AARCH64_TRIPLE})
set(CMAKE_FIND_ROOT_PATH ${LOWBIT_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)    # never link an x86 library
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)    # header-only dependencies live in /usr/include
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)    # ... and their CMake configs in /usr/share, /usr/lib

# Test executables run under qemu-user; -L points the emulator at the aarch64 loader and
# shared libraries. A value given on the command line wins.
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(LOWBIT_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
  if(LOWBIT_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${LOWBIT_QEMU_AARCH64} -L ${LOWBIT_AARCH64_SYSROOT})
  endif()
endif()
