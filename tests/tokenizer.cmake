# tokenizer.json support: the test file reports a skip (CTest shows it as skipped, not passed)
# when lowbit was built without PCRE2 / utf8proc, and `lowbit tokenize` is checked end to end
# against ids from ../shared/data/tokenizers/golden_public.json.
if(TEST test_tokenizer_hf)
  set_tests_properties(test_tokenizer_hf PROPERTIES
    SKIP_REGULAR_EXPRESSION "SKIPPED: lowbit was built without PCRE2")
endif()

if(TARGET lowbit_cli AND EXISTS ${LOWBIT_DATA}/tokenizers/llama3_style_tokenizer.json)
  if(LOWBIT_WITH_HF_TOKENIZER)
    # golden_public.json, text 25 ("Numbers 1234567 and 3.5"), Llama-3 style: BOS 0 first.
    add_test(NAME cli_tokenize_llama3 COMMAND ${LOWBIT_CLI} tokenize
             ${LOWBIT_DATA}/tokenizers/llama3_style_tokenizer.json --text "Numbers 1234567 and 3.5")
    set_tests_properties(cli_tokenize_llama3 PROPERTIES
      PASS_REGULAR_EXPRESSION "^0 47 1734 660 222 1377 1306 23 24 268 222 20 15 22\n$")
    # A model directory, --json: text 20 ("Hello world") with stories260k-hf (BOS 1).
    add_test(NAME cli_tokenize_json COMMAND ${LOWBIT_CLI} tokenize ${LOWBIT_DATA}/stories260k-hf
             --text "Hello world" --json)
    set_tests_properties(cli_tokenize_json PROPERTIES PASS_REGULAR_EXPRESSION
      "^\\{\"ids\": \\[1, 346, 306, 414, 263, 304, 341\\], \"tokens\": \\[\"<s>\", \"▁He\", \"ll\", \"o\", \"▁w\", \"or\", \"ld\"\\]\\}\n$")
    # --file takes the bytes as one text; --no-special drops BOS (Qwen2 style adds none anyway).
    set(_tok_file ${CMAKE_CURRENT_BINARY_DIR}/cli_tokenize_hello.txt)
    file(WRITE ${_tok_file} "Hello world")
    add_test(NAME cli_tokenize_file COMMAND ${LOWBIT_CLI} tokenize
             ${LOWBIT_DATA}/tokenizers/llama3_style_tokenizer.json --file ${_tok_file} --no-special)
    set_tests_properties(cli_tokenize_file PROPERTIES PASS_REGULAR_EXPRESSION "^2036 1482\n$")
    # --text and --file together, or neither: an error.
    add_test(NAME cli_tokenize_both COMMAND ${LOWBIT_CLI} tokenize ${LOWBIT_DATA}/stories260k-hf
             --text x --file ${_tok_file})
    set_tests_properties(cli_tokenize_both PROPERTIES WILL_FAIL TRUE)
    add_test(NAME cli_tokenize_neither COMMAND ${LOWBIT_CLI} tokenize ${LOWBIT_DATA}/stories260k-hf)
    set_tests_properties(cli_tokenize_neither PROPERTIES
      PASS_REGULAR_EXPRESSION "give the text with --text STRING or --file PATH")
  else()
    add_test(NAME cli_tokenize_unavailable COMMAND ${LOWBIT_CLI} tokenize ${LOWBIT_DATA}/stories260k-hf --text x)
    set_tests_properties(cli_tokenize_unavailable PROPERTIES
      PASS_REGULAR_EXPRESSION "built without tokenizer.json support")
  endif()
endif()
