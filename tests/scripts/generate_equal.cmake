# cmake -DLOWBIT=... -DA="arg|arg|..." -DB="arg|arg|..." -P generate_equal.cmake
# Runs `lowbit generate A --json` and `lowbit generate B --json` and requires the same
# prompt_ids and generated_ids (and at least one generated id), e.g. a GGUF file with its own
# tokenizer against the Hugging Face directory it was exported from, at --temperature 0.
foreach(side A B)
  string(REPLACE "|" ";" ${side} "${${side}}")
  execute_process(COMMAND ${LOWBIT} generate ${${side}} --json RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "generate ${${side}} failed (${rc}): ${err}")
  endif()
  string(REGEX MATCH "\"prompt_ids\":\\[[0-9,]*\\]" prompt_${side} "${out}")
  string(REGEX MATCH "\"generated_ids\":\\[[0-9,]+\\]" gen_${side} "${out}")
  if(prompt_${side} STREQUAL "" OR gen_${side} STREQUAL "")
    message(FATAL_ERROR "no prompt_ids / generated_ids in: ${out}")
  endif()
  message(STATUS "${side}: ${prompt_${side}} ${gen_${side}}")
endforeach()
if(NOT prompt_A STREQUAL prompt_B OR NOT gen_A STREQUAL gen_B)
  message(FATAL_ERROR "generate results differ: A ${prompt_A} ${gen_A}, B ${prompt_B} ${gen_B}")
endif()
message(STATUS "generate results equal")
