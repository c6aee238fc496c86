# End to end: `lowbit eval` reproduces the stories260K tokenizer check sentence of
# ../shared/data/stories260k/README.md (35 tokens, perplexity about 4.9536).
if(TARGET lowbit_cli AND EXISTS ${PROJECT_SOURCE_DIR}/../shared/data/stories260k/tok512.bin)
  set(_lowbit_d ${PROJECT_SOURCE_DIR}/../shared/data/stories260k)
  add_test(NAME cli_eval_check_sentence
           COMMAND lowbit_cli eval ${_lowbit_d}/stories260K.bin
                   --text "One day, a clever fox found a shiny key under the old oak tree."
                   --tokenizer ${_lowbit_d}/tok512.bin)
  set_tests_properties(cli_eval_check_sentence PROPERTIES PASS_REGULAR_EXPRESSION "4\\.95[34]")
endif()
