# CTest entries for `lowbit export --format compressed-tensors` and compressed-tensors import
# through the CLI: stories260k-hf (Hugging Face order, so no q/k permutation) quantized by
# each mapping, exported, and evaluated: the compressed-tensors directory's perplexity equals
# the lowbit checkpoint's digit for digit. Refusals name the layer. Shared data only.
if(TARGET lowbit_cli)
  lowbit_test_dir(_c_dir cli_ct)
  if(EXISTS ${LOWBIT_STORIES_HF}/config.json AND EXISTS ${LOWBIT_STORIES_TOK})
    # name | quantize flags (','-separated) | format the export reports
    set(_maps
        "fp8|--recipe,w8a8-fp8|35 float-quantized"
        "int8|--weights,int8,--group,0,--activations,int8|35 int-quantized"
        "int4-gptq|--recipe,w4a16-int4,--calib,${LOWBIT_STORIES_TOK},--calib-samples,4,--exclude,down_proj|30 pack-quantized"
        "int4-asym-g32|--weights,int4,--group,32,--asymmetric,--exclude,down_proj|30 pack-quantized"
        "nvfp4|--recipe,nvfp4,--exclude,down_proj|30 nvfp4-pack-quantized"
        "mxfp4|--recipe,mxfp4,--exclude,down_proj|30 mxfp4-pack-quantized")
    foreach(m ${_maps})
      string(REPLACE "|" ";" m "${m}")
      list(GET m 0 name)
      list(GET m 1 flags)
      list(GET m 2 want)
      string(REPLACE "," ";" flags "${flags}")
      set(_q ${_c_dir}/${name})
      add_test(NAME cli_ct_quantize_${name} COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_q}/ ${flags} --quiet)
      set_tests_properties(cli_ct_quantize_${name} PROPERTIES FIXTURES_SETUP cli_ct_q_${name})
      add_test(NAME cli_ct_export_${name} COMMAND ${LOWBIT_CLI} export ${_q} -o ${_c_dir}/${name}-ct --format compressed-tensors)
      set_tests_properties(cli_ct_export_${name} PROPERTIES FIXTURES_REQUIRED cli_ct_q_${name}
                           FIXTURES_SETUP cli_ct_x_${name}
                           PASS_REGULAR_EXPRESSION "-> [^ ]*${name}-ct \\(compressed-tensors, layers: ${want}, [0-9]+ unquantized; norms folded: 0; tokenizer: copied\\)")
      lowbit_add_eval_equal(cli_ct_eval_equal_${name} cli_ct_x_${name}
                            "${_q}|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" "${_c_dir}/${name}-ct|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20")
    endforeach()
    # Smoothing shared per norm (q/k/v, gate/up; none on o_proj / down_proj,
    # model/norm_smoothing.hpp: w8a8-int8's default, w4a16-sqplus with --smooth-scope norm)
    # folds into input_layernorm / post_attention_layernorm. The
    # folded model computes norm(x)·(γ/s) where lowbit computes (norm(x)·γ)/s, so perplexity
    # agrees to rounding, not digit for digit (lowbit_add_eval_close, tests/scripts/cli_equal.cmake): within 1e-6
    # relative for the weight-only sqplus (measured 2.4e-8); within 2e-3 for w8a8-int8, whose
    # per-token int8 activation codes flip where x/s differs by one rounding: which ones flip
    # is chance, measured 5.5e-5 to 4.1e-4 over two builds' forward passes and the checkpoints
    # their sequential calibrations wrote (session 36), where unfolded norms give 40x.
    set(_smooth
        "sqplus|--recipe,w4a16-sqplus,--smooth-scope,norm,--exclude,down_proj|30 pack-quantized|1000000"
        "w8a8-int8|--recipe,w8a8-int8|35 int-quantized|500")
    foreach(m ${_smooth})
      string(REPLACE "|" ";" m "${m}")
      list(GET m 0 name)
      list(GET m 1 flags)
      list(GET m 2 want)
      list(GET m 3 tol_div)
      string(REPLACE "," ";" flags "${flags}")
      set(_q ${_c_dir}/${name})
      add_test(NAME cli_ct_quantize_${name} COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_q}/ ${flags}
               --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --quiet)
      set_tests_properties(cli_ct_quantize_${name} PROPERTIES FIXTURES_SETUP cli_ct_q_${name})
      add_test(NAME cli_ct_export_${name} COMMAND ${LOWBIT_CLI} export ${_q} -o ${_c_dir}/${name}-ct --format compressed-tensors)
      set_tests_properties(cli_ct_export_${name} PROPERTIES FIXTURES_REQUIRED cli_ct_q_${name}
                           FIXTURES_SETUP cli_ct_x_${name}
                           PASS_REGULAR_EXPRESSION "-> [^ ]*${name}-ct \\(compressed-tensors, layers: ${want}, [0-9]+ unquantized; norms folded: 10; tokenizer: copied\\)")
      lowbit_add_eval_close(cli_ct_eval_close_${name} cli_ct_x_${name}
                            "${_q}|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20"
                            "${_c_dir}/${name}-ct|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" ${tol_div})
    endforeach()
    # One step: quantize --format compressed-tensors shares w4a16-sqplus's vectors per norm by
    # itself (no --smooth-scope given): the same directory as the two steps above.
    add_test(NAME cli_ct_quantize_format_sqplus COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_c_dir}/sqplus-one
             --recipe w4a16-sqplus --exclude down_proj --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --quiet --format compressed-tensors)
    set_tests_properties(cli_ct_quantize_format_sqplus PROPERTIES FIXTURES_SETUP cli_ct_one_sqplus
                         PASS_REGULAR_EXPRESSION "sqplus-one \\(compressed-tensors, layers: 30 pack-quantized, [0-9]+ unquantized; norms folded: 10;")
    lowbit_add_eval_equal(cli_ct_eval_equal_sqplus_one cli_ct_one_sqplus
                          "${_c_dir}/sqplus-one|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20" "${_c_dir}/sqplus-ct|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|20")
    set_tests_properties(cli_ct_eval_equal_sqplus_one PROPERTIES FIXTURES_REQUIRED "cli_ct_one_sqplus;cli_ct_x_sqplus")
    # Refused: w4a16-sqplus smooths every layer separately by default (--smooth-scope layer);
    # one norm cannot fold three different vectors. Nothing is written. --allow-lossy writes
    # them requantized instead.
    set(_s ${_c_dir}/sqplus-layer)
    add_test(NAME cli_ct_quantize_sqplus_layer COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_s}/ --recipe w4a16-sqplus
             --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --exclude down_proj --quiet)
    set_tests_properties(cli_ct_quantize_sqplus_layer PROPERTIES FIXTURES_SETUP cli_ct_q_sqplus_layer)
    add_test(NAME cli_ct_export_refused COMMAND ${LOWBIT_CLI} export ${_s} -o ${_c_dir}/sqplus-layer-ct --format compressed-tensors)
    set_tests_properties(cli_ct_export_refused PROPERTIES FIXTURES_REQUIRED cli_ct_q_sqplus_layer
                         PASS_REGULAR_EXPRESSION "compressed-tensors export: layer model.layers.0.self_attn.k_proj and model.layers.0.self_attn.q_proj read the same norm with different smoothing vectors.*--allow-lossy")
    add_test(NAME cli_ct_export_refused_nothing_written COMMAND ${CMAKE_COMMAND} -E cat ${_c_dir}/sqplus-layer-ct/config.json)
    set_tests_properties(cli_ct_export_refused_nothing_written PROPERTIES DEPENDS cli_ct_export_refused WILL_FAIL TRUE)
    add_test(NAME cli_ct_export_lossy COMMAND ${LOWBIT_CLI} export ${_s} -o ${_c_dir}/sqplus-layer-lossy --format compressed-tensors --allow-lossy)
    set_tests_properties(cli_ct_export_lossy PROPERTIES FIXTURES_REQUIRED cli_ct_q_sqplus_layer DEPENDS cli_ct_export_refused
                         PASS_REGULAR_EXPRESSION "lossy: layer model.layers.0.self_attn.q_proj -> pack-quantized \\([^)]*\\): SQNR [0-9.]+ dB.*norms folded: 0; tokenizer: copied; 30 layers requantized \\(--allow-lossy")
  endif()
endif()
