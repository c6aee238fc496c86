# cmake -DDIR=<path> -P fresh_dir.cmake: DIR emptied (made if missing). A fixture runs it before
# a test writes its output there, so that files an earlier run (or an older version of the
# test) left behind cannot make the output look complete.
if(NOT DIR)
  message(FATAL_ERROR "fresh_dir.cmake: give -DDIR=<path>")
endif()
file(REMOVE_RECURSE "${DIR}")
file(MAKE_DIRECTORY "${DIR}")
