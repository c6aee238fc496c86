# cmake -DCOMPILERS=<c++|clang++> -DSOURCE=<file.cpp> -DFLAGS=<-I...|-isystem|...> -DOBJDUMP=<objdump>
#       -DWORK=<dir> -DREQUIRED=<regex> [-DFORBIDDEN=<regex>] [-DLEVELS=-O1|-O2|-O3]
#       [-DFUNCTION=<regex> (-DMIN_IN_FUNCTION=<n> | -DMAX_STACK_IN_FUNCTION=<n>)] -P isa_check.cmake
# Compiles SOURCE at every level of LEVELS (default -O1, -O2, -O3) with every compiler given,
# disassembles the object and fails, naming the compiler and the level:
# - if an instruction matches FORBIDDEN (naming the function);
# - if none matches REQUIRED (proof that the code under test was compiled and read, not an
#   empty object);
# - with FUNCTION and MIN_IN_FUNCTION: unless one function whose name matches FUNCTION holds
#   at least MIN_IN_FUNCTION instructions matching REQUIRED (a register block unrolled into
#   registers, not a loop over an array in memory);
# - with FUNCTION and MAX_STACK_IN_FUNCTION: if a function whose name matches FUNCTION holds
#   more than MAX_STACK_IN_FUNCTION vector loads or stores on the stack (%rsp or %rbp: an
#   array of vector registers left in memory).
string(REPLACE "|" ";" COMPILERS "${COMPILERS}")
string(REPLACE "|" ";" FLAGS "${FLAGS}")
if(NOT DEFINED LEVELS)
  set(LEVELS "-O1|-O2|-O3")
endif()
string(REPLACE "|" ";" LEVELS "${LEVELS}")
get_filename_component(sname ${SOURCE} NAME_WE)
foreach(cxx ${COMPILERS})
  get_filename_component(cname ${cxx} NAME)
  foreach(level ${LEVELS})
    set(obj ${WORK}/${sname}-${cname}${level}.o)
    execute_process(COMMAND ${cxx} -std=c++17 ${level} ${FLAGS} -c ${SOURCE} -o ${obj}
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${cname} ${level}: could not compile ${SOURCE}:\n${err}")
    endif()
    execute_process(COMMAND ${OBJDUMP} -d --no-show-raw-insn -C ${obj} OUTPUT_VARIABLE asm RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0 OR asm STREQUAL "")
      message(FATAL_ERROR "${OBJDUMP} could not disassemble ${obj}")
    endif()
    string(REPLACE "\n" ";" lines "${asm}")
    set(fn "")
    set(count 0)
    set(required 0)
    set(in_fn 0)       # lines counted in the current function, when its name matches FUNCTION
    set(best 0)        # the most of them in one such function
    set(best_fn "")
    foreach(line ${lines})
      if(line MATCHES ">:$")
        set(fn "${line}")
        set(in_fn 0)
        continue()
      endif()
      if(line MATCHES "${REQUIRED}")
        math(EXPR required "${required} + 1")
      endif()
      # What a function is judged by: its REQUIRED instructions (MIN_IN_FUNCTION) or its vector
      # loads and stores on the stack (MAX_STACK_IN_FUNCTION).
      set(counted FALSE)
      if(DEFINED MIN_IN_FUNCTION AND line MATCHES "${REQUIRED}")
        set(counted TRUE)
      elseif(DEFINED MAX_STACK_IN_FUNCTION AND line MATCHES "[xyz]mm" AND line MATCHES "\\(%r[sb]p\\)")
        set(counted TRUE)
      endif()
      if(counted AND fn MATCHES "${FUNCTION}")
        math(EXPR in_fn "${in_fn} + 1")
        if(in_fn GREATER best)
          set(best ${in_fn})
          set(best_fn "${fn}")
        endif()
      endif()
      if(DEFINED FORBIDDEN AND line MATCHES "${FORBIDDEN}")
        math(EXPR count "${count} + 1")
        if(count LESS 4)
          message(STATUS "${cname} ${level}: ${line}\n    in ${fn}")
        endif()
      endif()
    endforeach()
    if(count GREATER 0)
      message(FATAL_ERROR "${cname} ${level}: ${count} forbidden instructions (${FORBIDDEN}) in code for CPUs without them")
    endif()
    if(required EQUAL 0)
      message(FATAL_ERROR "${cname} ${level}: no instruction matching ${REQUIRED}: the code under test is not in ${obj}")
    endif()
    if(DEFINED MIN_IN_FUNCTION)
      if(best LESS MIN_IN_FUNCTION)
        message(FATAL_ERROR "${cname} ${level}: at most ${best} instructions matching ${REQUIRED} in one function "
                            "matching ${FUNCTION}, fewer than the ${MIN_IN_FUNCTION} of one unrolled register block "
                            "(its loop over the block was left rolled, with the accumulators in memory)")
      endif()
      message(STATUS "${cname} ${level}: ${best} instructions matching ${REQUIRED} in ${best_fn}")
    elseif(DEFINED MAX_STACK_IN_FUNCTION)
      if(best GREATER MAX_STACK_IN_FUNCTION)
        message(FATAL_ERROR "${cname} ${level}: ${best} vector loads or stores on the stack in ${best_fn}, "
                            "more than ${MAX_STACK_IN_FUNCTION} (a register block left in memory)")
      endif()
      message(STATUS "${cname} ${level}: at most ${best} vector stack references in one function matching ${FUNCTION}")
    else()
      message(STATUS "${cname} ${level}: ${required} instructions matching ${REQUIRED}, none matching ${FORBIDDEN}")
    endif()
  endforeach()
endforeach()
