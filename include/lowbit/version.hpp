#pragma once
// lowbit version, kept in step with project(VERSION) in the top-level CMakeLists.txt.
#define LOWBIT_VERSION_MAJOR 0
#define LOWBIT_VERSION_MINOR 1
#define LOWBIT_VERSION_PATCH 0
#define LOWBIT_VERSION_STRING "0.1.0"
