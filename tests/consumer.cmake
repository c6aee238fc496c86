# Consumer projects: CTest builds and runs two tiny downstream programs, one against an
# installed lowbit (find_package) and one against this source tree (add_subdirectory), so a
# broken export set, config file, version file or include path fails the test suite.
#
#   consumer_clean -> consumer_configure -> consumer_install -> consumer_find_package
#   consumer_add_subdirectory (independent)
#
# They need the host compiler to run what they build, so they are skipped when
# cross-compiling, and LOWBIT_TEST_CONSUMERS=OFF skips them (the sanitizer stage does).
option(LOWBIT_TEST_CONSUMERS "Build and run the find_package / add_subdirectory consumer projects" ON)

if(LOWBIT_TEST_CONSUMERS AND NOT CMAKE_CROSSCOMPILING)
  set(lowbit_consumer_root ${CMAKE_CURRENT_BINARY_DIR}/consumer)
  set(lowbit_consumer_src ${CMAKE_CURRENT_SOURCE_DIR}/consumer)

  # The consumers compile lowbit's headers with the team's warning flags, so a header that
  # warns in someone else's build fails here first.
  set(lowbit_consumer_flags "${CMAKE_CXX_FLAGS} -Wall -Wextra -Wshadow=local")
  if(LOWBIT_WERROR)
    string(APPEND lowbit_consumer_flags " -Werror")
  endif()
  set(lowbit_consumer_options
    -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
    -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_CXX_FLAGS=${lowbit_consumer_flags}")

  # (i) install a fresh configure of the source tree into a temporary prefix ...
  add_test(NAME consumer_clean
    COMMAND ${CMAKE_COMMAND} -E remove_directory ${lowbit_consumer_root})
  add_test(NAME consumer_configure
    COMMAND ${CMAKE_COMMAND} -S ${PROJECT_SOURCE_DIR} -B ${lowbit_consumer_root}/lowbit-build
            -G ${CMAKE_GENERATOR}
            -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_EXAMPLES=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF
            -DLOWBIT_INSTALL=ON
            -DCMAKE_INSTALL_PREFIX=${lowbit_consumer_root}/prefix)
  add_test(NAME consumer_install
    COMMAND ${CMAKE_COMMAND} --install ${lowbit_consumer_root}/lowbit-build
            --prefix ${lowbit_consumer_root}/prefix)
  set_tests_properties(consumer_clean PROPERTIES FIXTURES_SETUP lowbit_consumer_clean)
  set_tests_properties(consumer_configure PROPERTIES
    FIXTURES_REQUIRED lowbit_consumer_clean FIXTURES_SETUP lowbit_consumer_configured)
  set_tests_properties(consumer_install PROPERTIES
    FIXTURES_REQUIRED "lowbit_consumer_clean;lowbit_consumer_configured"
    FIXTURES_SETUP lowbit_consumer_installed)

  # ... then build and run a program that finds it with find_package(lowbit).
  add_test(NAME consumer_find_package
    COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
            ${lowbit_consumer_src}/find_package ${lowbit_consumer_root}/find_package
            --build-generator ${CMAKE_GENERATOR}
            --build-makeprogram ${CMAKE_MAKE_PROGRAM}
            --build-options ${lowbit_consumer_options}
                            -DCMAKE_PREFIX_PATH=${lowbit_consumer_root}/prefix
                            -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
            --test-command consumer)
  set_tests_properties(consumer_find_package PROPERTIES
    FIXTURES_REQUIRED "lowbit_consumer_clean;lowbit_consumer_installed")

  # (ii) a program that vendors the source tree with add_subdirectory(lowbit).
  add_test(NAME consumer_add_subdirectory
    COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
            ${lowbit_consumer_src}/add_subdirectory ${lowbit_consumer_root}/add_subdirectory
            --build-generator ${CMAKE_GENERATOR}
            --build-makeprogram ${CMAKE_MAKE_PROGRAM}
            --build-options ${lowbit_consumer_options}
                            -DLOWBIT_SOURCE_DIR=${PROJECT_SOURCE_DIR}
            --test-command consumer)
  set_tests_properties(consumer_add_subdirectory PROPERTIES
    FIXTURES_REQUIRED lowbit_consumer_clean)
endif()
