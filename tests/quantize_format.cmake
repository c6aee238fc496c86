# CTest entries for `lowbit quantize IN -o OUT --format gguf|compressed-tensors` (quantize and
# export in one run): the one-step output evaluates equal, digit for digit, to the two-step
# `quantize` + `export` output; no temporary checkpoint is left beside OUT; a refusal the
# recipe decides (NVFP4 has no GGUF type, MXFP4 groups that do not tile a row) comes before
# quantizing, and it and an unknown --format leave nothing written. The
# two-step run comes first in each chain (fixtures), so one fixture covers both outputs.
# Shared data only.
if(TARGET lowbit_cli)
  lowbit_test_dir(_qf_dir cli_quantize_format)
  # Passes when directory DIR holds no file matching any of PATTERNS ('|'-separated).
  set(_qf_none ${_qf_dir}/nothing_left.cmake)
  file(WRITE ${_qf_none} "string(REPLACE \"|\" \";\" PATTERNS \"\${PATTERNS}\")\nset(l)\nforeach(p \${PATTERNS})\n  file(GLOB m LIST_DIRECTORIES true \"\${DIR}/\${p}\")\n"
                         "  list(APPEND l \${m})\nendforeach()\nif(l)\n  message(FATAL_ERROR \"left behind: \${l}\")\nendif()\n"
                         "message(\"nothing left\")\n")
  function(lowbit_qf_nothing_left name after dir patterns)
    add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -DDIR=${dir} "-DPATTERNS=${patterns}" -P ${_qf_none})
    set_tests_properties(${name} PROPERTIES DEPENDS ${after} PASS_REGULAR_EXPRESSION "nothing left")
  endfunction()

  if(EXISTS ${LOWBIT_STORIES_ST} AND EXISTS ${LOWBIT_STORIES_TOK})
    # GGUF: the Meta safetensors file (config.json beside it), down projections excluded (172
    # columns are not whole 32-element blocks), as in gguf.cmake.
    set(_q ${_qf_dir}/gguf-two)
    file(MAKE_DIRECTORY ${_q})
    file(COPY ${LOWBIT_STORIES}/config.json DESTINATION ${_q})
    add_test(NAME quantize_format_gguf_two_quantize COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_q}/model.safetensors
             --recipe gguf-q4_0 --exclude "w2" --quiet)
    set_tests_properties(quantize_format_gguf_two_quantize PROPERTIES FIXTURES_SETUP qf_gguf_q)
    add_test(NAME quantize_format_gguf_two_export COMMAND ${LOWBIT_CLI} export ${_q} -o ${_qf_dir}/two.gguf --format gguf)
    set_tests_properties(quantize_format_gguf_two_export PROPERTIES FIXTURES_REQUIRED qf_gguf_q FIXTURES_SETUP qf_gguf_x)
    set(_o ${_qf_dir}/gguf-one)
    file(MAKE_DIRECTORY ${_o})
    add_test(NAME quantize_format_gguf COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_o}/one.gguf
             --recipe gguf-q4_0 --exclude "w2" --quiet --format gguf)
    # Both steps' summary lines.
    set_tests_properties(quantize_format_gguf PROPERTIES FIXTURES_REQUIRED qf_gguf_x FIXTURES_SETUP qf_gguf_both
                         PASS_REGULAR_EXPRESSION "-> lowbit checkpoint \\([^)]*\\) in [^\n]*\nquantized [^ ]*stories260K.safetensors -> [^ ]*one.gguf \\(GGUF llama, tensors: [^)]*30 Q4_0")
    lowbit_add_eval_equal(quantize_format_gguf_eval_equal qf_gguf_both
                          "${_o}/one.gguf|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" "${_qf_dir}/two.gguf|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20")
    lowbit_qf_nothing_left(quantize_format_gguf_no_temporary quantize_format_gguf ${_o} ".*lowbit-tmp*")
    # OUT is a GGUF file (a lowbit checkpoint there would evaluate equal too).
    add_test(NAME quantize_format_gguf_is_gguf COMMAND ${LOWBIT_CLI} eval ${_o}/one.gguf --tokens ${LOWBIT_STORIES_TOK} --max-docs 1)
    set_tests_properties(quantize_format_gguf_is_gguf PROPERTIES FIXTURES_REQUIRED qf_gguf_both
                         PASS_REGULAR_EXPRESSION "model +[^ ]*one.gguf \\(GGUF llama")

    # Refused before quantizing (NVFP4 has no GGUF type: the recipe decides it), by the
    # exporter's own rule and words (lowbit::model::exportable), naming the layer; no
    # quantization ran (no quantize summary line), nothing written, no temporary.
    set(_n ${_qf_dir}/refused)
    file(MAKE_DIRECTORY ${_n})
    add_test(NAME quantize_format_refused COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_n}/nvfp4.gguf
             --recipe nvfp4 --exclude "w2" --quiet --format gguf)
    set_tests_properties(quantize_format_refused PROPERTIES
                         PASS_REGULAR_EXPRESSION "error: [^ ]*stories260K.safetensors: GGUF export: layer layers.0.attention.wq \\([^)]*\\): GGUF export of 'layers.0.attention.wq': NVFP4 [^\n]*\\(refused before quantizing\\)"
                         FAIL_REGULAR_EXPRESSION "lowbit checkpoint")
    lowbit_qf_nothing_left(quantize_format_refused_nothing_written quantize_format_refused ${_n} "*|.*")
    # The same for a layout the recipe decides: stories260K's down projections (172 columns)
    # are not whole 32-element GGUF blocks.
    add_test(NAME quantize_format_refused_layout COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_n}/q8.gguf
             --recipe gguf-q8_0 --quiet --format gguf)
    set_tests_properties(quantize_format_refused_layout PROPERTIES
                         PASS_REGULAR_EXPRESSION "GGUF export: layer layers.0.feed_forward.w2 \\([^)]*\\): GGUF export of 'layers.0.feed_forward.w2': rows of 172 elements are not a whole number of 32-element GGUF blocks \\(refused before quantizing\\)"
                         FAIL_REGULAR_EXPRESSION "lowbit checkpoint")
    lowbit_qf_nothing_left(quantize_format_refused_layout_nothing_written quantize_format_refused_layout ${_n} "*|.*")

    # An unknown format is refused before any work.
    set(_b ${_qf_dir}/bad)
    file(MAKE_DIRECTORY ${_b})
    add_test(NAME quantize_format_unknown COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_b}/x.onnx --recipe gguf-q4_0 --format onnx)
    set_tests_properties(quantize_format_unknown PROPERTIES
                         PASS_REGULAR_EXPRESSION "quantize: unknown --format 'onnx' \\(gguf, compressed-tensors\\)")
    lowbit_qf_nothing_left(quantize_format_unknown_nothing_written quantize_format_unknown ${_b} "*|.*")
    # The output kinds: GGUF is a file, compressed-tensors a directory.
    add_test(NAME quantize_format_gguf_dir COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_b}/ --recipe gguf-q4_0 --format gguf)
    set_tests_properties(quantize_format_gguf_dir PROPERTIES PASS_REGULAR_EXPRESSION "--format gguf writes a file")
  endif()

  if(EXISTS ${LOWBIT_STORIES_HF}/config.json AND EXISTS ${LOWBIT_STORIES_TOK})
    set(_q ${_qf_dir}/ct-two)
    add_test(NAME quantize_format_ct_two_quantize COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_q}/ --recipe w8a8-fp8 --quiet)
    set_tests_properties(quantize_format_ct_two_quantize PROPERTIES FIXTURES_SETUP qf_ct_q)
    add_test(NAME quantize_format_ct_two_export COMMAND ${LOWBIT_CLI} export ${_q} -o ${_qf_dir}/two-ct --format compressed-tensors)
    set_tests_properties(quantize_format_ct_two_export PROPERTIES FIXTURES_REQUIRED qf_ct_q FIXTURES_SETUP qf_ct_x)
    set(_o ${_qf_dir}/ct-one)
    file(MAKE_DIRECTORY ${_o})
    add_test(NAME quantize_format_ct COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_o}/one-ct --recipe w8a8-fp8 --quiet
             --format compressed-tensors)
    set_tests_properties(quantize_format_ct PROPERTIES FIXTURES_REQUIRED qf_ct_x FIXTURES_SETUP qf_ct_both
                         PASS_REGULAR_EXPRESSION "-> lowbit checkpoint \\([^)]*\\) in [^\n]*\nquantized [^ ]*stories260k-hf -> [^ ]*one-ct \\(compressed-tensors, layers: 35 float-quantized, [0-9]+ unquantized; norms folded: 0; tokenizer: copied\\)")
    lowbit_add_eval_equal(quantize_format_ct_eval_equal qf_ct_both
                          "${_o}/one-ct|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" "${_qf_dir}/two-ct|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20")
    lowbit_qf_nothing_left(quantize_format_ct_no_temporary quantize_format_ct ${_o} ".*lowbit-tmp*")
    add_test(NAME quantize_format_ct_is_ct COMMAND ${LOWBIT_CLI} eval ${_o}/one-ct --tokens ${LOWBIT_STORIES_TOK} --max-docs 1)
    set_tests_properties(quantize_format_ct_is_ct PROPERTIES FIXTURES_REQUIRED qf_ct_both
                         PASS_REGULAR_EXPRESSION "model +[^ ]*one-ct \\(LlamaForCausalLM \\(compressed-tensors\\)")
    # MXFP4 groups of 32 do not tile the down projections' 172 columns: refused before
    # quantizing, nothing written.
    set(_m ${_qf_dir}/ct-refused)
    file(MAKE_DIRECTORY ${_m})
    add_test(NAME quantize_format_ct_refused COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_m}/mx-ct --recipe mxfp4 --quiet
             --format compressed-tensors)
    set_tests_properties(quantize_format_ct_refused PROPERTIES
                         PASS_REGULAR_EXPRESSION "compressed-tensors export: layer model.layers.0.mlp.down_proj \\([^)]*\\): group size 32 does not divide the 172 columns[^\n]*\\(refused before quantizing\\)"
                         FAIL_REGULAR_EXPRESSION "lowbit checkpoint")
    lowbit_qf_nothing_left(quantize_format_ct_refused_nothing_written quantize_format_ct_refused ${_m} "*|.*")
    file(WRITE ${_qf_dir}/a-file "not a directory\n")
    add_test(NAME quantize_format_ct_file COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_qf_dir}/a-file --recipe w8a8-fp8 --format compressed-tensors)
    set_tests_properties(quantize_format_ct_file PROPERTIES PASS_REGULAR_EXPRESSION "--format compressed-tensors writes a directory")
  endif()
endif()
