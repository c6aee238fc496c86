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

# W4A16 with 16-bit activations on stories260K (200 documents): the fp16/bf16 kernel input
# (AVX512-FP16 path where the CPU has it) keeps the perplexity of fp32 activations, 4.8644
# (measured 4.8642 with fp16, 4.8641 with bf16).
if(TARGET lowbit_cli AND EXISTS ${PROJECT_SOURCE_DIR}/../shared/data/stories260k/eval_tinystories_val_tok512.u16)
  set(_lowbit_d ${PROJECT_SOURCE_DIR}/../shared/data/stories260k)
  foreach(_dtype f16 bf16)
    add_test(NAME cli_eval_w4a16_${_dtype}
             COMMAND lowbit_cli eval ${_lowbit_d}/stories260K.bin
                     --tokens ${_lowbit_d}/eval_tinystories_val_tok512.u16 --max-docs 200
                     --weights int4 --group 32 --activations ${_dtype} --backend packed)
    set_tests_properties(cli_eval_w4a16_${_dtype} PROPERTIES PASS_REGULAR_EXPRESSION "perplexity +4\\.86[345]")
  endforeach()
endif()
