# CTest entries for `lowbit quantize`'s tensor rules (--include/--exclude/--ignore/--override),
# output directories (shards, index, config.json, tokenizer.json, the quantization record),
# --requantize, --json/--json-out and the calibration set (--calib-samples/--calib-seq-len,
# empty and too-short files). Fixtures come from tests/cli.cmake (cli_tiny) and ../shared/data.
if(TARGET lowbit_cli)
  lowbit_test_dir(_q_dir cli_quantize)

  # Tensor rules: w1 of layers 3.. only (5 of the tiny model's 8 layers); an override for w1 of layer 7.
  add_test(NAME cli_quantize_rules COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY} -o ${_q_dir}/rules.safetensors --recipe mxfp4
           --include w1 --exclude "layers\\.0\\." --ignore "layers\\.1\\." --ignore "layers\\.2\\." --override "layers\\.7\\.=int8:channel")
  set_tests_properties(cli_quantize_rules PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "layers.7.feed_forward.w1.weight .* int8:channel.*\nscheme mxfp4 \\([^)]*\\): 5 of [0-9]+ tensors quantized.*\noverride layers")
  add_test(NAME cli_quantize_rules_json COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY} -o ${_q_dir}/rules2.safetensors --recipe mxfp4
           --override "w2=int8:channel" --json --json-out ${_q_dir}/rules2.json)
  set_tests_properties(cli_quantize_rules_json PROPERTIES FIXTURES_REQUIRED cli_tiny FIXTURES_SETUP cli_q_json
                       PASS_REGULAR_EXPRESSION "\"name\": \"layers.0.feed_forward.w2.weight\",\n *\"quantized\": true,\n.*\"scheme\": \"int8:channel\"")
  add_test(NAME cli_quantize_json_out COMMAND ${CMAKE_COMMAND} -E cat ${_q_dir}/rules2.json)
  set_tests_properties(cli_quantize_json_out PROPERTIES FIXTURES_REQUIRED cli_q_json
                       PASS_REGULAR_EXPRESSION "\"overrides\": \\[\n *{\n *\"effective\": \"int8:channel\"")
  # The effective scheme of every layer is in its checkpoint entry.
  add_test(NAME cli_quantize_rules_inspect COMMAND ${LOWBIT_CLI} inspect ${_q_dir}/rules2.safetensors --json)
  set_tests_properties(cli_quantize_rules_inspect PROPERTIES FIXTURES_REQUIRED cli_q_json
                       PASS_REGULAR_EXPRESSION "int8:channel")
  add_test(NAME cli_quantize_bad_override COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_CLI_TINY} -o ${_q_dir}/bad.safetensors --override "w2")
  set_tests_properties(cli_quantize_bad_override PROPERTIES FIXTURES_REQUIRED cli_tiny
                       PASS_REGULAR_EXPRESSION "--override: expected REGEX=SCHEME")

  if(EXISTS ${LOWBIT_STORIES_HF}/config.json)
    # A model directory in, a directory of shards out (small --max-shard-size: several shards).
    add_test(NAME cli_quantize_dir COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_q_dir}/hf_out --recipe mxfp4
             --max-shard-size 200KB --override "down_proj=int8:channel")
    set_tests_properties(cli_quantize_dir PROPERTIES FIXTURES_SETUP cli_q_dir
                         PASS_REGULAR_EXPRESSION "35 of 47 tensors quantized.*\n.*-> [^ ]*hf_out \\([^,]*, [2-9] shards\\)")
    add_test(NAME cli_quantize_dir_index COMMAND ${CMAKE_COMMAND} -E cat ${_q_dir}/hf_out/model.safetensors.index.json)
    set_tests_properties(cli_quantize_dir_index PROPERTIES FIXTURES_REQUIRED cli_q_dir
                         PASS_REGULAR_EXPRESSION "\"model.layers.4.mlp.down_proj.qweight\": \"model-0000[0-9]-of-0000[0-9].safetensors\"")
    add_test(NAME cli_quantize_dir_config COMMAND ${CMAKE_COMMAND} -E cat ${_q_dir}/hf_out/config.json)
    set_tests_properties(cli_quantize_dir_config PROPERTIES FIXTURES_REQUIRED cli_q_dir
                         PASS_REGULAR_EXPRESSION "\"quantization_config\": {\n *\"calibration\": null,.*\"pattern\": \"down_proj\"")
    add_test(NAME cli_quantize_dir_tokenizer COMMAND ${CMAKE_COMMAND} -E compare_files ${LOWBIT_STORIES_HF}/tokenizer.json
             ${_q_dir}/hf_out/tokenizer.json)
    set_tests_properties(cli_quantize_dir_tokenizer PROPERTIES FIXTURES_REQUIRED cli_q_dir)
    add_test(NAME cli_quantize_dir_inspect COMMAND ${LOWBIT_CLI} inspect ${_q_dir}/hf_out)
    set_tests_properties(cli_quantize_dir_inspect PROPERTIES FIXTURES_REQUIRED cli_q_dir
                         PASS_REGULAR_EXPRESSION "model.layers.4.mlp.down_proj")
    # Re-quantizing a lowbit checkpoint: refused, or dequantized first with --requantize.
    add_test(NAME cli_quantize_requantize_refused COMMAND ${LOWBIT_CLI} quantize ${_q_dir}/hf_out -o ${_q_dir}/re_bad/ --recipe nvfp4)
    set_tests_properties(cli_quantize_requantize_refused PROPERTIES FIXTURES_REQUIRED cli_q_dir
                         PASS_REGULAR_EXPRESSION "is a lowbit checkpoint \\(already quantized.*--requantize")
    add_test(NAME cli_quantize_requantize_nothing_written COMMAND ${CMAKE_COMMAND} -E cat ${_q_dir}/re_bad/config.json)
    set_tests_properties(cli_quantize_requantize_nothing_written PROPERTIES DEPENDS cli_quantize_requantize_refused WILL_FAIL TRUE)
    add_test(NAME cli_quantize_requantize COMMAND ${LOWBIT_CLI} quantize ${_q_dir}/hf_out -o ${_q_dir}/re/ --recipe nvfp4 --requantize)
    set_tests_properties(cli_quantize_requantize PROPERTIES FIXTURES_REQUIRED cli_q_dir
                         PASS_REGULAR_EXPRESSION "--requantize: .* dequantized its 35 quantized layers")
  endif()

  if(EXISTS ${LOWBIT_STORIES_ST} AND EXISTS ${LOWBIT_STORIES_TOK})
    add_test(NAME cli_quantize_calib_samples COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_q_dir}/calib.safetensors
             --recipe w4a16-int4 --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --calib-seq-len 64 --quiet)
    set_tests_properties(cli_quantize_calib_samples PROPERTIES
                         PASS_REGULAR_EXPRESSION "calibration: 256 tokens in 4 samples of")
    # An empty calibration file, and one whose documents are 1 token long: errors that say so, no output.
    add_test(NAME cli_quantize_calib_files COMMAND ${CMAKE_COMMAND} -E touch ${_q_dir}/empty.u16)
    set_tests_properties(cli_quantize_calib_files PROPERTIES FIXTURES_SETUP cli_q_calib_files)
    add_test(NAME cli_quantize_calib_empty COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_q_dir}/empty_out.safetensors
             --recipe w4a16-int4 --calib ${_q_dir}/empty.u16)
    set_tests_properties(cli_quantize_calib_empty PROPERTIES FIXTURES_REQUIRED cli_q_calib_files
                         PASS_REGULAR_EXPRESSION "empty.u16: the calibration file is empty")
    add_test(NAME cli_quantize_calib_empty_nothing_written COMMAND ${CMAKE_COMMAND} -E cat ${_q_dir}/empty_out.safetensors)
    set_tests_properties(cli_quantize_calib_empty_nothing_written PROPERTIES DEPENDS cli_quantize_calib_empty WILL_FAIL TRUE)
  endif()
endif()
