// The Catch2 main; every test file is tagged with its file name ([#test_x]) so CTest runs
// each file as its own test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
