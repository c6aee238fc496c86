# Finds the two libraries lowbit's tokenizer.json support (lowbit/model/hf_tokenizer.hpp)
# needs: PCRE2 (8-bit code units) for the pre-tokenizer regexes and utf8proc for Unicode
# normalization. Used by lowbit's own CMakeLists.txt and by the installed lowbitConfig.cmake,
# so a consumer of the installed package links the same libraries.
#
# Sets LOWBIT_TOKENIZER_DEPS_FOUND and, when found, the imported targets
# lowbit_deps::pcre2_8 and lowbit_deps::utf8proc (GLOBAL: lowbit::lowbit names them in its
# interface, which add_subdirectory consumers resolve in their own directory).
# Plain find_path / find_library, so a cross build's CMAKE_FIND_ROOT_PATH keeps host
# libraries out (the aarch64 build has no arm64 libpcre2 and builds without the feature).
set(LOWBIT_TOKENIZER_DEPS_FOUND OFF)
if(TARGET lowbit_deps::pcre2_8 AND TARGET lowbit_deps::utf8proc)
  set(LOWBIT_TOKENIZER_DEPS_FOUND ON)
  return()
endif()
find_path(LOWBIT_PCRE2_INCLUDE_DIR pcre2.h)
find_library(LOWBIT_PCRE2_LIBRARY NAMES pcre2-8)
find_path(LOWBIT_UTF8PROC_INCLUDE_DIR utf8proc.h)
find_library(LOWBIT_UTF8PROC_LIBRARY NAMES utf8proc)
if(LOWBIT_PCRE2_INCLUDE_DIR AND LOWBIT_PCRE2_LIBRARY AND LOWBIT_UTF8PROC_INCLUDE_DIR
   AND LOWBIT_UTF8PROC_LIBRARY)
  add_library(lowbit_deps::pcre2_8 UNKNOWN IMPORTED GLOBAL)
  set_target_properties(lowbit_deps::pcre2_8 PROPERTIES
    IMPORTED_LOCATION "${LOWBIT_PCRE2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LOWBIT_PCRE2_INCLUDE_DIR}")
  add_library(lowbit_deps::utf8proc UNKNOWN IMPORTED GLOBAL)
  set_target_properties(lowbit_deps::utf8proc PROPERTIES
    IMPORTED_LOCATION "${LOWBIT_UTF8PROC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LOWBIT_UTF8PROC_INCLUDE_DIR}")
  set(LOWBIT_TOKENIZER_DEPS_FOUND ON)
endif()
