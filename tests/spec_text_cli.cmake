# The spec text is the CLI's one spelling of a weight scheme (issue 15): the scheme flags
# compose it, and every label (quantize's table and metadata, inspect, compare) prints it.
if(TARGET lowbit_cli)
  set(_spec_dir ${CMAKE_CURRENT_BINARY_DIR}/cli_e2e)
  # --weights/--group/--scale print and store the canonical text; inspect reads it back.
  add_test(NAME cli_spec_text_flags COMMAND sh -c
           "'${LOWBIT_CLI}' quantize '${LOWBIT_CLI_TINY}' -o '${_spec_dir}/tiny.spec.safetensors' --weights fp4 --group 32 --scale m2 --quiet && '${LOWBIT_CLI}' inspect '${_spec_dir}/tiny.spec.safetensors'")
  set_tests_properties(cli_spec_text_flags PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "lowbit.scheme = float4_e2m1fn:g32:m2\n.*layers.0.attention.wq.qweight .*: float4_e2m1fn:g32:m2")
  # compare labels spec text by its canonical form, whatever spelling was given.
  add_test(NAME cli_spec_text_compare_label COMMAND ${LOWBIT_CLI} compare ${LOWBIT_CLI_TINY} --recipes fp4:g32:m2 --json)
  set_tests_properties(cli_spec_text_compare_label PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "\"scheme\": \"float4_e2m1fn:g32:m2\"")
  # An explicit --group that --scale mx would replace: the parser's error, led by the flags.
  add_test(NAME cli_spec_text_flag_error COMMAND sh -c
           "! '${LOWBIT_CLI}' quantize '${LOWBIT_CLI_TINY}' -o '${_spec_dir}/tiny.bad.safetensors' --weights fp4 --group 64 --scale mx --quiet 2>&1")
  set_tests_properties(cli_spec_text_flag_error PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "error: --weights fp4 --group 64 --scale mx: quant spec 'float4_e2m1fn:g64:mx': the mx scale fixes the group size at 32")
endif()
