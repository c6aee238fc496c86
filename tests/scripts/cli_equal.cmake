# cmake -DLOWBIT=... -DLOWBIT_COMMAND=eval|generate -DA="arg|arg|..." -DB="arg|arg|..." -P cli_equal.cmake
# Runs `lowbit LOWBIT_COMMAND A --json` and `lowbit LOWBIT_COMMAND B --json` and requires the
# fields that define the command's result to be the same, character for character:
#   eval      total_nll and perplexity (doubles printed with full precision through nlohmann);
#   generate  prompt_ids and generated_ids, with at least one generated id (e.g. a GGUF file
#             with its own tokenizer against the Hugging Face directory it came from, at
#             --temperature 0).
# Passes with "<command> results equal"; CTest entries come from lowbit_add_cli_equal.
if(LOWBIT_COMMAND STREQUAL "eval")
  set(fields "\"total_nll\": [-0-9.e+]+" "\"perplexity\": [-0-9.e+]+")
elseif(LOWBIT_COMMAND STREQUAL "generate")
  set(fields "\"prompt_ids\":\\[[0-9,]*\\]" "\"generated_ids\":\\[[0-9,]+\\]")
else()
  message(FATAL_ERROR "cli_equal.cmake: LOWBIT_COMMAND must be eval or generate, not '${LOWBIT_COMMAND}'")
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
  message(STATUS "${side}:${result_${side}}")
endforeach()
if(NOT result_A STREQUAL result_B)
  message(FATAL_ERROR "${LOWBIT_COMMAND} results differ: A${result_A}, B${result_B}")
endif()
message(STATUS "${LOWBIT_COMMAND} results equal")
