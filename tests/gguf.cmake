# CTest entries for `lowbit export --format gguf` and GGUF import through the CLI:
# stories260K quantized on each GGUF grid (down projections excluded: their 172 columns are
# not whole 32-element blocks), exported, and evaluated: the GGUF file's perplexity equals the
# lowbit checkpoint's digit for digit. The Hugging Face directory exports with its tokenizer
# (q/k rows reordered for llama.cpp). Refusals name the layer. Shared data only.
if(TARGET lowbit_cli)
  lowbit_test_dir(_g_dir cli_gguf)
  if(EXISTS ${LOWBIT_STORIES_ST} AND EXISTS ${LOWBIT_STORIES_TOK})
    foreach(recipe gguf-q8_0 gguf-q4_0 mxfp4)
      set(_q ${_g_dir}/${recipe})
      file(MAKE_DIRECTORY ${_q})
      file(COPY ${LOWBIT_STORIES}/config.json DESTINATION ${_q})
      add_test(NAME cli_gguf_quantize_${recipe} COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_q}/model.safetensors
               --recipe ${recipe} --exclude "w2" --quiet)
      set_tests_properties(cli_gguf_quantize_${recipe} PROPERTIES FIXTURES_SETUP cli_gguf_q_${recipe})
      add_test(NAME cli_gguf_export_${recipe} COMMAND ${LOWBIT_CLI} export ${_q} -o ${_g_dir}/${recipe}.gguf --format gguf)
      set_tests_properties(cli_gguf_export_${recipe} PROPERTIES FIXTURES_REQUIRED cli_gguf_q_${recipe}
                           FIXTURES_SETUP cli_gguf_x_${recipe}
                           PASS_REGULAR_EXPRESSION "-> [^ ]*${recipe}.gguf \\(GGUF llama, tensors: [^)]*30 (Q8_0|Q4_0|MXFP4)[^)]*tokenizer: none\\)")
      lowbit_add_eval_equal(cli_gguf_eval_equal_${recipe} cli_gguf_x_${recipe}
                            "${_q}/model.safetensors|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" "${_g_dir}/${recipe}.gguf|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20")
    endforeach()
    # Unquantized: F32 as stored, equal to the source model's eval.
    add_test(NAME cli_gguf_export_f32 COMMAND ${LOWBIT_CLI} export ${LOWBIT_STORIES_ST} -o ${_g_dir}/f32.gguf --format gguf)
    set_tests_properties(cli_gguf_export_f32 PROPERTIES FIXTURES_SETUP cli_gguf_f32
                         PASS_REGULAR_EXPRESSION "tensors: 47 F32; tokenizer: none")
    lowbit_add_eval_equal(cli_gguf_eval_equal_f32 cli_gguf_f32
                          "${LOWBIT_STORIES_ST}|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" "${_g_dir}/f32.gguf|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20")
    # Refused: NVFP4 has no exact GGUF type; nothing is written.
    set(_n ${_g_dir}/nvfp4)
    file(MAKE_DIRECTORY ${_n})
    file(COPY ${LOWBIT_STORIES}/config.json DESTINATION ${_n})
    add_test(NAME cli_gguf_quantize_nvfp4 COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_n}/model.safetensors
             --recipe nvfp4 --exclude "w2" --quiet)
    set_tests_properties(cli_gguf_quantize_nvfp4 PROPERTIES FIXTURES_SETUP cli_gguf_q_nvfp4)
    add_test(NAME cli_gguf_export_refused COMMAND ${LOWBIT_CLI} export ${_n} -o ${_g_dir}/nvfp4.gguf --format gguf)
    set_tests_properties(cli_gguf_export_refused PROPERTIES FIXTURES_REQUIRED cli_gguf_q_nvfp4
                         PASS_REGULAR_EXPRESSION "GGUF export: layer layers.0.attention.wq \\([^)]*\\): GGUF export of 'layers.0.attention.wq': NVFP4")
    add_test(NAME cli_gguf_export_refused_nothing_written COMMAND ${CMAKE_COMMAND} -E cat ${_g_dir}/nvfp4.gguf)
    set_tests_properties(cli_gguf_export_refused_nothing_written PROPERTIES DEPENDS cli_gguf_export_refused WILL_FAIL TRUE)
    # LoRC factors have no GGUF form: refused, naming the layer and --allow-lossy; with it, each
    # layer's effective weight W_hat + U V is requantized to Q8_0 and the added error reported.
    set(_l ${_g_dir}/lorc)
    file(MAKE_DIRECTORY ${_l})
    file(COPY ${LOWBIT_STORIES}/config.json DESTINATION ${_l})
    add_test(NAME cli_gguf_quantize_lorc COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_l}/model.safetensors
             --recipe gguf-q8_0 --lorc 4 --exclude "w2" --quiet)
    set_tests_properties(cli_gguf_quantize_lorc PROPERTIES FIXTURES_SETUP cli_gguf_q_lorc)
    add_test(NAME cli_gguf_export_lorc_refused COMMAND ${LOWBIT_CLI} export ${_l} -o ${_g_dir}/lorc.gguf --format gguf)
    set_tests_properties(cli_gguf_export_lorc_refused PROPERTIES FIXTURES_REQUIRED cli_gguf_q_lorc
                         PASS_REGULAR_EXPRESSION "GGUF export: layer layers.0.attention.wq: LoRC factors \\(GGUF has no low-rank correction term\\) \\(--allow-lossy writes it requantized")
    add_test(NAME cli_gguf_export_lorc_lossy COMMAND ${LOWBIT_CLI} export ${_l} -o ${_g_dir}/lorc-lossy.gguf --format gguf --allow-lossy)
    set_tests_properties(cli_gguf_export_lorc_lossy PROPERTIES FIXTURES_REQUIRED cli_gguf_q_lorc FIXTURES_SETUP cli_gguf_x_lorc
                         DEPENDS cli_gguf_export_lorc_refused
                         PASS_REGULAR_EXPRESSION "lossy: layer layers.0.attention.wq -> Q8_0 \\(int8:g32:f16\\): SQNR [0-9.]+ dB, relative error 0\\.[0-9]+ \\(exact export refused: .*LoRC.*30 Q8_0.*30 layers requantized \\(--allow-lossy")
    add_test(NAME cli_gguf_eval_lorc_lossy COMMAND ${LOWBIT_CLI} eval ${_g_dir}/lorc-lossy.gguf --tokens ${LOWBIT_STORIES_TOK} --max-docs 20)
    set_tests_properties(cli_gguf_eval_lorc_lossy PROPERTIES FIXTURES_REQUIRED cli_gguf_x_lorc PASS_REGULAR_EXPRESSION "perplexity")
    add_test(NAME cli_gguf_export_bad_format COMMAND ${LOWBIT_CLI} export ${LOWBIT_STORIES_ST} -o ${_g_dir}/x.gguf --format onnx)
    set_tests_properties(cli_gguf_export_bad_format PROPERTIES PASS_REGULAR_EXPRESSION "unknown --format 'onnx'")
  endif()
  if(EXISTS ${LOWBIT_STORIES_HF}/tokenizer.json AND EXISTS ${LOWBIT_STORIES_TOK})
    add_test(NAME cli_gguf_export_hf COMMAND ${LOWBIT_CLI} export ${LOWBIT_STORIES_HF} -o ${_g_dir}/hf.gguf --format gguf)
    set_tests_properties(cli_gguf_export_hf PROPERTIES FIXTURES_SETUP cli_gguf_hf
                         PASS_REGULAR_EXPRESSION "tokenizer: llama; q/k rows reordered for llama.cpp's rope")
    add_test(NAME cli_gguf_eval_hf COMMAND ${LOWBIT_CLI} eval ${_g_dir}/hf.gguf --tokens ${LOWBIT_STORIES_TOK} --max-docs 20)
    set_tests_properties(cli_gguf_eval_hf PROPERTIES FIXTURES_REQUIRED cli_gguf_hf
                         PASS_REGULAR_EXPRESSION "perplexity")
    # The GGUF file's own tokenizer (tokenizer.ggml.*, nothing beside the file) encodes the
    # prompt as the directory's tokenizer.json does, and greedy generation picks the same ids.
    set(_gen ${_g_dir}/gen)
    file(MAKE_DIRECTORY ${_gen})
    add_test(NAME cli_gguf_export_hf_alone COMMAND ${LOWBIT_CLI} export ${LOWBIT_STORIES_HF} -o ${_gen}/hf.gguf --format gguf)
    set_tests_properties(cli_gguf_export_hf_alone PROPERTIES FIXTURES_SETUP cli_gguf_hf_alone
                         PASS_REGULAR_EXPRESSION "tokenizer: llama")
    set(_gen_args "--prompt|Once upon a time, Lily saw a big red ball in the park.|--temperature|0|--max-new-tokens|24")
    lowbit_add_cli_equal(cli_gguf_generate_own_tokenizer cli_gguf_hf_alone generate
                         "${_gen}/hf.gguf|${_gen_args}" "${LOWBIT_STORIES_HF}|${_gen_args}")
  endif()
endif()
