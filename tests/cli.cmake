# End-to-end CTest entries for `lowbit quantize / inspect / compare` on a tiny generated
# checkpoint, and on stories260K when ../shared/data/stories260k exists. Each checks the exit
# code and a line of the output; the error case checks that nothing is left under the name.
if(TARGET lowbit_cli)
  lowbit_test_dir(_cli_dir cli_e2e)
  add_test(NAME cli_synth COMMAND ${LOWBIT_CLI} synth ${LOWBIT_CLI_TINY} --size-gb 0.001 --dtype bf16)
  set_tests_properties(cli_synth PROPERTIES FIXTURES_SETUP cli_tiny PASS_REGULAR_EXPRESSION "BF16")
  add_test(NAME cli_quantize_tiny COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY}
           -o ${_cli_dir}/tiny.int4.safetensors --weights int4 --group 32 --lorc 2 --quiet)
  set_tests_properties(cli_quantize_tiny PROPERTIES FIXTURES_REQUIRED cli_tiny FIXTURES_SETUP cli_tiny_q
                       PASS_REGULAR_EXPRESSION "scheme int4:g32 lorc2: [0-9]+ of [0-9]+ tensors quantized")
  add_test(NAME cli_inspect_tiny COMMAND ${LOWBIT_CLI} inspect ${_cli_dir}/tiny.int4.safetensors)
  set_tests_properties(cli_inspect_tiny PROPERTIES FIXTURES_REQUIRED cli_tiny_q
                       PASS_REGULAR_EXPRESSION "layers.0.attention.wq.qweight +U8 .*int4:g32")
  add_test(NAME cli_compare_tiny COMMAND ${LOWBIT_CLI} compare ${LOWBIT_CLI_TINY} --recipes int8:channel,mxfp4
           --probe-tokens 4 --json)
  set_tests_properties(cli_compare_tiny PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "\"scheme\": \"mxfp4\"")
  add_test(NAME cli_quantize_recipe COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY}
           -o ${_cli_dir}/tiny.mxfp4.safetensors --recipe mxfp4 --json)
  set_tests_properties(cli_quantize_recipe PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "\"scheme\": \"mxfp4 \\(float4_e2m1fn:g32:mx\\)\"")
  # A bad scheme: one line on stderr, non-zero exit, and no output file.
  add_test(NAME cli_quantize_error COMMAND ${CMAKE_COMMAND} -E env ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY}
           -o ${_cli_dir}/bad.safetensors --weights int4 --scale nvfp4)
  set_tests_properties(cli_quantize_error PROPERTIES FIXTURES_REQUIRED cli_tiny WILL_FAIL TRUE)
  # Calibration runs the model: a non-Llama input is a clear error, and so is a recipe that
  # needs calibration without --calib.
  add_test(NAME cli_quantize_calib_not_llama COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY}
           -o ${_cli_dir}/bad_calib.safetensors --recipe w4a8-int --calib ${LOWBIT_CLI_TINY} --quiet)
  set_tests_properties(cli_quantize_calib_not_llama PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "--calib runs the model layer by layer and supports Llama-family models only")
  add_test(NAME cli_quantize_needs_calib COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY}
           -o ${_cli_dir}/bad_calib.safetensors --recipe w4a16-int4 --quiet)
  set_tests_properties(cli_quantize_needs_calib PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "--recipe w4a16-int4 needs calibration.*--calib FILE \\(\\.txt or \\.jsonl")
  add_test(NAME cli_quantize_error_nothing_written COMMAND ${CMAKE_COMMAND} -E cat ${_cli_dir}/bad.safetensors)
  set_tests_properties(cli_quantize_error_nothing_written PROPERTIES DEPENDS cli_quantize_error WILL_FAIL TRUE)

  if(EXISTS ${LOWBIT_STORIES_ST})
    add_test(NAME cli_quantize_stories260k COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST}
             -o ${_cli_dir}/stories.nvfp4.safetensors --weights fp4 --scale nvfp4 --activations fp8 --quiet)
    set_tests_properties(cli_quantize_stories260k PROPERTIES FIXTURES_SETUP cli_stories
                         PASS_REGULAR_EXPRESSION "35 of 47 tensors quantized")
    add_test(NAME cli_inspect_stories260k COMMAND ${LOWBIT_CLI} inspect ${_cli_dir}/stories.nvfp4.safetensors --json)
    set_tests_properties(cli_inspect_stories260k PROPERTIES FIXTURES_REQUIRED cli_stories
                         PASS_REGULAR_EXPRESSION "layers.4.feed_forward.w2.tensor_scale")
    add_test(NAME cli_compare_stories260k COMMAND ${LOWBIT_CLI} compare ${LOWBIT_STORIES_ST} --recipes int4:g32,nvfp4 --quiet)
    set_tests_properties(cli_compare_stories260k PROPERTIES PASS_REGULAR_EXPRESSION "nvfp4 +4\\.5")

    # Calibrated quantization through the model's forward pass (GPTQ + LoRC + FP8 activations),
    # the QuantizedLinear extras in inspect, and named recipes on recorded activations.
    if(EXISTS ${LOWBIT_STORIES_TOK})
      add_test(NAME cli_quantize_stories260k_calib COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST}
               -o ${_cli_dir}/stories.w4a8fp.safetensors --recipe w4a8-fp --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --quiet)
      set_tests_properties(cli_quantize_stories260k_calib PROPERTIES FIXTURES_SETUP cli_stories_calib
                           PASS_REGULAR_EXPRESSION "35 of 47 tensors quantized.*\ncalibration: [1-9][0-9]* tokens in 4 samples")
      add_test(NAME cli_inspect_stories260k_calib COMMAND ${LOWBIT_CLI} inspect ${_cli_dir}/stories.w4a8fp.safetensors)
      set_tests_properties(cli_inspect_stories260k_calib PROPERTIES FIXTURES_REQUIRED cli_stories_calib
                           PASS_REGULAR_EXPRESSION "layers.4.feed_forward.w2.lorc_u .*recipe w4a8-fp, a:float8_e4m3fn, lorc8/f16")
      add_test(NAME cli_compare_stories260k_recipes COMMAND ${LOWBIT_CLI} compare ${LOWBIT_STORIES_ST}
               --recipes w8a8-fp8,w4a8-int,w4a16-sqplus,int4:g32 --calib ${LOWBIT_STORIES_TOK} --calib-docs 4 --quiet)
      set_tests_properties(cli_compare_stories260k_recipes PROPERTIES
                           PASS_REGULAR_EXPRESSION "out SQNR rec.*\nw8a8-fp8 .*\nw4a8-int +[0-9.]+ +[0-9.]+ +[0-9.]+ .*recorded from the model's forward pass")
    endif()
  endif()
endif()
