# cmake -DLOWBIT=... -DLOWBIT_COMMAND=eval|generate -DA="arg|arg|..." -DB="arg|arg|..."
#       [-DTOL_DIV=N] -P cli_equal.cmake
# Runs `lowbit LOWBIT_COMMAND A --json` and `lowbit LOWBIT_COMMAND B --json` and requires the
# fields that define the command's result to be the same, character for character:
#   eval      total_nll and perplexity (doubles printed with full precision through nlohmann);
#   generate  prompt_ids and generated_ids, with at least one generated id (e.g. a GGUF file
#             with its own tokenizer against the Hugging Face directory it came from, at
#             --temperature 0).
# With TOL_DIV (eval only), the perplexities need only agree within a relative 1/TOL_DIV: for
# paths that compute the same model with the operations in another order (compressed-tensors'
# smoothing folded into the norm: norm(x)·(γ/s) where lowbit computes (norm(x)·γ)/s).
# Passes with "<command> results equal" (or "... agree within 1/N"); CTest entries come from
# lowbit_add_cli_equal and lowbit_add_eval_close.
if(LOWBIT_COMMAND STREQUAL "eval")
  set(fields "\"total_nll\": [-0-9.e+]+" "\"perplexity\": [-0-9.e+]+")
elseif(LOWBIT_COMMAND STREQUAL "generate")
  set(fields "\"prompt_ids\":\\[[0-9,]*\\]" "\"generated_ids\":\\[[0-9,]+\\]")
else()
  message(FATAL_ERROR "cli_equal.cmake: LOWBIT_COMMAND must be eval or generate, not '${LOWBIT_COMMAND}'")
endif()
if(DEFINED TOL_DIV AND NOT LOWBIT_COMMAND STREQUAL "eval")
  message(FATAL_ERROR "cli_equal.cmake: TOL_DIV applies to eval only")
endif()
foreach(side A B)
  string(REPLACE "|" ";" args "${${side}}")
  execute_process(COMMAND ${LOWBIT} ${LOWBIT_COMMAND} ${args} --json
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${LOWBIT_COMMAND} ${args} failed (${rc}): ${err}")
  endif()
  set(result_${side} "")
  foreach(field IN LISTS fields)
    string(REGEX MATCH "${field}" found "${out}")
    if(found STREQUAL "")
      message(FATAL_ERROR "no match for ${field} in: ${out}")
    endif()
    string(APPEND result_${side} " ${found}")
  endforeach()
  string(REGEX MATCH "\"perplexity\": ([-0-9.e+]+)" m "${out}")
  set(ppl_${side} "${CMAKE_MATCH_1}")
  message(STATUS "${side}:${result_${side}}")
endforeach()

if(NOT DEFINED TOL_DIV)
  if(NOT result_A STREQUAL result_B)
    message(FATAL_ERROR "${LOWBIT_COMMAND} results differ: A${result_A}, B${result_B}")
  endif()
  message(STATUS "${LOWBIT_COMMAND} results equal")
  return()
endif()

# CMake has no floating point: each perplexity as a 64-bit integer in units of 1e-12
# (perplexities are far below 1e6), then |A - B| <= A / TOL_DIV.
foreach(side A B)
  if(NOT ppl_${side} MATCHES "^([0-9]+)\\.([0-9]+)$")
    message(FATAL_ERROR "perplexity ${ppl_${side}} is not a plain decimal")
  endif()
  set(int ${CMAKE_MATCH_1})
  string(SUBSTRING "${CMAKE_MATCH_2}000000000000" 0 12 frac)
  string(REGEX REPLACE "^0+([0-9])" "\\1" frac "${frac}")
  math(EXPR v_${side} "${int} * 1000000000000 + ${frac}")
endforeach()
math(EXPR diff "${v_A} - ${v_B}")
if(diff LESS 0)
  math(EXPR diff "0 - ${diff}")
endif()
math(EXPR tol "${v_A} / ${TOL_DIV}")
if(diff GREATER tol)
  message(FATAL_ERROR "perplexities differ by more than 1/${TOL_DIV}: A ${ppl_A}, B ${ppl_B}")
endif()
message(STATUS "eval results agree within 1/${TOL_DIV} (A ${ppl_A}, B ${ppl_B})")
