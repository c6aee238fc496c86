// The Catch2 main; every test file is tagged with its file name ([#test_x]) so CTest runs
// each file as its own test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "lowbit/threads.hpp"

// Every parallel call of the tests splits as if its work were large (detail/threads.hpp
// runs small work inline by default), so that the tests' small shapes exercise the thread
// splits whose results they compare. test_threads.cpp turns it off to test the rule itself.
static const bool lowbit_tests_split_small_work = [] {
  lowbit::detail::split_small_work().store(true);
  return true;
}();
