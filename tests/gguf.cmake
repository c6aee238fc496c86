# CTest entries for `lowbit export --format gguf` and GGUF import through the CLI:
# stories260K quantized on each GGUF grid (down projections excluded: their 172 columns are
# not whole 32-element blocks), exported, and evaluated: the GGUF file's perplexity equals the
# lowbit checkpoint's digit for digit. The Hugging Face directory exports with its tokenizer
# (q/k rows reordered for llama.cpp). Refusals name the layer. Shared data only.
if(TARGET lowbit_cli)
  set(_g_dir ${CMAKE_CURRENT_BINARY_DIR}/cli_gguf)
  file(MAKE_DIRECTORY ${_g_dir})
  set(_lowbit $<TARGET_FILE:lowbit_cli>)
  set(_sdir ${PROJECT_SOURCE_DIR}/../shared/data/stories260k)
  set(_st ${_sdir}/stories260K.safetensors)
  set(_tok ${_sdir}/eval_tinystories_val_tok512.u16)
  if(EXISTS ${_st} AND EXISTS ${_tok})
    foreach(recipe gguf-q8_0 gguf-q4_0 mxfp4)
      set(_q ${_g_dir}/${recipe})
      file(MAKE_DIRECTORY ${_q})
      file(COPY ${_sdir}/config.json DESTINATION ${_q})
      add_test(NAME cli_gguf_quantize_${recipe} COMMAND ${_lowbit} quantize ${_st} -o ${_q}/model.safetensors
               --recipe ${recipe} --exclude "w2" --quiet)
      set_tests_properties(cli_gguf_quantize_${recipe} PROPERTIES FIXTURES_SETUP cli_gguf_q_${recipe})
      add_test(NAME cli_gguf_export_${recipe} COMMAND ${_lowbit} export ${_q} -o ${_g_dir}/${recipe}.gguf --format gguf)
      set_tests_properties(cli_gguf_export_${recipe} PROPERTIES FIXTURES_REQUIRED cli_gguf_q_${recipe}
                           FIXTURES_SETUP cli_gguf_x_${recipe}
                           PASS_REGULAR_EXPRESSION "-> [^ ]*${recipe}.gguf \\(GGUF llama, tensors: [^)]*30 (Q8_0|Q4_0|MXFP4)[^)]*tokenizer: none\\)")
      lowbit_add_eval_equal(cli_gguf_eval_equal_${recipe} cli_gguf_x_${recipe}
                            "${_q}/model.safetensors|--tokens|${_tok}|--max-docs|20" "${_g_dir}/${recipe}.gguf|--tokens|${_tok}|--max-docs|20")
    endforeach()
    # Unquantized: F32 as stored, equal to the source model's eval.
    add_test(NAME cli_gguf_export_f32 COMMAND ${_lowbit} export ${_st} -o ${_g_dir}/f32.gguf --format gguf)
    set_tests_properties(cli_gguf_export_f32 PROPERTIES FIXTURES_SETUP cli_gguf_f32
                         PASS_REGULAR_EXPRESSION "tensors: 47 F32; tokenizer: none")
    lowbit_add_eval_equal(cli_gguf_eval_equal_f32 cli_gguf_f32
                          "${_st}|--tokens|${_tok}|--max-docs|20" "${_g_dir}/f32.gguf|--tokens|${_tok}|--max-docs|20")
    # Refused: NVFP4 has no exact GGUF type; nothing is written.
    set(_n ${_g_dir}/nvfp4)
    file(MAKE_DIRECTORY ${_n})
    file(COPY ${_sdir}/config.json DESTINATION ${_n})
    add_test(NAME cli_gguf_quantize_nvfp4 COMMAND ${_lowbit} quantize ${_st} -o ${_n}/model.safetensors
             --recipe nvfp4 --exclude "w2" --quiet)
    set_tests_properties(cli_gguf_quantize_nvfp4 PROPERTIES FIXTURES_SETUP cli_gguf_q_nvfp4)
    add_test(NAME cli_gguf_export_refused COMMAND ${_lowbit} export ${_n} -o ${_g_dir}/nvfp4.gguf --format gguf)
    set_tests_properties(cli_gguf_export_refused PROPERTIES FIXTURES_REQUIRED cli_gguf_q_nvfp4
                         PASS_REGULAR_EXPRESSION "GGUF export: layer layers.0.attention.wq \\([^)]*\\): GGUF export of 'layers.0.attention.wq': NVFP4")
    add_test(NAME cli_gguf_export_refused_nothing_written COMMAND ${CMAKE_COMMAND} -E cat ${_g_dir}/nvfp4.gguf)
    set_tests_properties(cli_gguf_export_refused_nothing_written PROPERTIES DEPENDS cli_gguf_export_refused WILL_FAIL TRUE)
    add_test(NAME cli_gguf_export_bad_format COMMAND ${_lowbit} export ${_st} -o ${_g_dir}/x.gguf --format onnx)
    set_tests_properties(cli_gguf_export_bad_format PROPERTIES PASS_REGULAR_EXPRESSION "unknown --format 'onnx'")
  endif()
  set(_hf ${PROJECT_SOURCE_DIR}/../shared/data/stories260k-hf)
  if(EXISTS ${_hf}/tokenizer.json AND EXISTS ${_tok})
    add_test(NAME cli_gguf_export_hf COMMAND ${_lowbit} export ${_hf} -o ${_g_dir}/hf.gguf --format gguf)
    set_tests_properties(cli_gguf_export_hf PROPERTIES FIXTURES_SETUP cli_gguf_hf
                         PASS_REGULAR_EXPRESSION "tokenizer: llama; q/k rows reordered for llama.cpp's rope")
    add_test(NAME cli_gguf_eval_hf COMMAND ${_lowbit} eval ${_g_dir}/hf.gguf --tokens ${_tok} --max-docs 20)
    set_tests_properties(cli_gguf_eval_hf PROPERTIES FIXTURES_REQUIRED cli_gguf_hf
                         PASS_REGULAR_EXPRESSION "perplexity")
  endif()
endif()
