# End-to-end CTest entries for running models: `lowbit generate`, `lowbit bench`, and loading
# what `lowbit quantize` wrote (eval of the checkpoint equals eval --recipe on the source,
# digit for digit, with the same calibration documents). stories260K only (shared data).
if(TARGET lowbit_cli)
  lowbit_test_dir(_run_dir cli_run)
  if(EXISTS ${LOWBIT_STORIES}/stories260K.bin AND EXISTS ${LOWBIT_STORIES}/tok512.bin)
    # Greedy fp32: the continuation tests/test_model_generate.cpp checks against its naive
    # reference, quoted in docs/accuracy.md.
    add_test(NAME cli_generate_greedy COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin --prompt "Once upon a time"
             --temperature 0 --max-new-tokens 24)
    set_tests_properties(cli_generate_greedy PROPERTIES PASS_REGULAR_EXPRESSION
                         "^Once upon a time, there was a little girl named Lily")
    add_test(NAME cli_generate_json COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin --prompt "Once upon a time"
             --temperature 0.9 --top-k 20 --top-p 0.9 --seed 3 --max-new-tokens 8 --kv-cache fp8 --json)
    set_tests_properties(cli_generate_json PROPERTIES PASS_REGULAR_EXPRESSION
      "(^|\n){\"prompt_ids\":\\[1,[0-9,]+\\],\"generated_ids\":\\[[0-9,]*\\],\"text\":\"[^\"]*\",\"prefill_tokens_per_second\":[0-9.e+-]+,\"decode_tokens_per_second\":[0-9.e+-]+}\n")
    # quantize reads safetensors: a llama2.c file is named as such, not parsed as safetensors.
    add_test(NAME cli_quantize_llama2c_refused COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES}/stories260K.bin
             -o ${_run_dir}/from_bin.safetensors --weights int4 --quiet)
    set_tests_properties(cli_quantize_llama2c_refused PROPERTIES PASS_REGULAR_EXPRESSION
                         "stories260K.bin: a llama2.c checkpoint; `lowbit quantize` reads safetensors")
    add_test(NAME cli_generate_bad_top_p COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin --prompt "Hi" --top-p 1.5)
    set_tests_properties(cli_generate_bad_top_p PROPERTIES PASS_REGULAR_EXPRESSION "top-p must be in \\(0, 1\\], got 1\\.5\n")
    add_test(NAME cli_generate_bad_top_k COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin --prompt "Hi" --top-k -1)
    set_tests_properties(cli_generate_bad_top_k PROPERTIES PASS_REGULAR_EXPRESSION "top-k must be >= 0")
    add_test(NAME cli_generate_bad_temperature COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin --prompt "Hi"
             --temperature -1)
    set_tests_properties(cli_generate_bad_temperature PROPERTIES PASS_REGULAR_EXPRESSION "temperature must be")
    string(REPEAT "Once upon a time there was a dog. " 80 _long_prompt)
    add_test(NAME cli_generate_prompt_too_long COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin --prompt "${_long_prompt}")
    set_tests_properties(cli_generate_prompt_too_long PROPERTIES PASS_REGULAR_EXPRESSION
                         "the prompt has [0-9]+ tokens but the context holds 512")
    add_test(NAME cli_bench_json COMMAND ${LOWBIT_CLI} bench ${LOWBIT_STORIES}/stories260K.bin -p 32 -n 16 --threads 1,2 --reps 2 --json)
    set_tests_properties(cli_bench_json PROPERTIES PASS_REGULAR_EXPRESSION
      "(^|\n){\"model_bytes\":[0-9]+,\"params\":[0-9]+,\"weight_bytes_per_token\":[0-9]+,\"results\":\\[{\"test\":\"pp32\",\"threads\":1,\"tokens_per_second\":[0-9.e+-]+,\"stddev\":[0-9.e+-]+},{\"test\":\"tg16\",\"threads\":1,[^]]*{\"test\":\"tg16\",\"threads\":2,\"tokens_per_second\":[0-9.e+-]+,\"stddev\":[0-9.e+-]+}\\]}\n")
    add_test(NAME cli_bench_bad_list COMMAND ${LOWBIT_CLI} bench ${LOWBIT_STORIES}/stories260K.bin -p 12x)
    set_tests_properties(cli_bench_bad_list PROPERTIES PASS_REGULAR_EXPRESSION "-p: expected a comma-separated list")
  endif()

  # quantize -> eval: the checkpoint, loaded as stored, evaluates exactly like eval --recipe on
  # the source model with the same 4 calibration documents (GPTQ recipes: the calibration's
  # activation sample sizes, which differ between the two commands, do not enter them).
  # The Meta-name source has its head count only in the config.json beside it, and quantize
  # carries it: w4a8-int is written as a directory (config.json and tok512.bin copied in),
  # w4a8-fp as a single file alone in its directory (the config.json text in its metadata).
  if(EXISTS ${LOWBIT_STORIES_ST} AND EXISTS ${LOWBIT_STORIES_TOK})
    foreach(recipe w4a8-int w4a8-fp)
      set(_q ${_run_dir}/${recipe})
      if(recipe STREQUAL "w4a8-int")
        set(_q_out ${_q}/)
      else()
        set(_q_out ${_q}/model.safetensors)
      endif()
      lowbit_add_fresh_dir(cli_run_fresh_${recipe} ${_q})
      add_test(NAME cli_run_quantize_${recipe} COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_q_out}
               --recipe ${recipe} --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --calib-inputs fp32 --quiet)
      set_tests_properties(cli_run_quantize_${recipe} PROPERTIES FIXTURES_SETUP cli_run_q_${recipe}
                           FIXTURES_REQUIRED cli_run_fresh_${recipe})
      lowbit_add_eval_equal(cli_run_eval_equal_${recipe} cli_run_q_${recipe}
                            "${_q}/model.safetensors|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40"
                            "${LOWBIT_STORIES_ST}|--recipe|${recipe}|--calib|${LOWBIT_STORIES_TOK}|--calib-docs|4|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40")
    endforeach()
    # The same through a Hugging Face directory: quantize writes an output directory (shards,
    # config.json, tokenizer.json) that eval, generate and bench read with HF names and
    # rotate-half RoPE. fp32 calibration inputs make sequential calibration equal eval's
    # whole-model calibration.
    if(EXISTS ${LOWBIT_STORIES_HF}/config.json)
      set(_qhf ${_run_dir}/hf-w4a8-int)
      add_test(NAME cli_run_quantize_hf COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF} -o ${_qhf}
               --recipe w4a8-int --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --calib-inputs fp32 --max-shard-size 100KB --quiet)
      set_tests_properties(cli_run_quantize_hf PROPERTIES FIXTURES_SETUP cli_run_q_hf)
      lowbit_add_eval_equal(cli_run_eval_equal_hf cli_run_q_hf
                            "${_qhf}|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40"
                            "${LOWBIT_STORIES_HF}|--recipe|w4a8-int|--calib|${LOWBIT_STORIES_TOK}|--calib-docs|4|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40")
      # A single file of Hugging Face names, alone in its directory: config.json from its
      # metadata (RoPE style, heads, everything).
      set(_qhf1 ${_run_dir}/hf-single)
      lowbit_add_fresh_dir(cli_run_fresh_hf_single ${_qhf1})
      add_test(NAME cli_run_quantize_hf_single COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_HF}
               -o ${_qhf1}/model.safetensors --recipe w8a8-fp8 --quiet)
      set_tests_properties(cli_run_quantize_hf_single PROPERTIES FIXTURES_SETUP cli_run_q_hf_single
                           FIXTURES_REQUIRED cli_run_fresh_hf_single)
      lowbit_add_eval_equal(cli_run_eval_equal_hf_single cli_run_q_hf_single
                            "${_qhf1}/model.safetensors|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40"
                            "${LOWBIT_STORIES_HF}|--recipe|w8a8-fp8|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40")
      add_test(NAME cli_run_generate_hf COMMAND ${LOWBIT_CLI} generate ${_qhf} --prompt "Once upon a time"
               --temperature 0 --max-new-tokens 16)
      set_tests_properties(cli_run_generate_hf PROPERTIES FIXTURES_REQUIRED cli_run_q_hf
                           PASS_REGULAR_EXPRESSION "^Once upon a time[^\n]+\n")
      add_test(NAME cli_run_bench_hf COMMAND ${LOWBIT_CLI} bench ${_qhf} -p 16 -n 8 --reps 1 --json)
      set_tests_properties(cli_run_bench_hf PROPERTIES FIXTURES_REQUIRED cli_run_q_hf
                           PASS_REGULAR_EXPRESSION "\"test\":\"tg8\"")
    endif()
    add_test(NAME cli_run_generate_checkpoint COMMAND ${LOWBIT_CLI} generate ${_run_dir}/w4a8-int --prompt "Once upon a time"
             --temperature 0 --max-new-tokens 16 --kv-cache f16)
    set_tests_properties(cli_run_generate_checkpoint PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-int
                         PASS_REGULAR_EXPRESSION "^Once upon a time[^\n]+\n")
    # A single-file checkpoint with nothing beside it: the config from its metadata, the
    # tokenizer named.
    add_test(NAME cli_run_generate_single_file COMMAND ${LOWBIT_CLI} generate ${_run_dir}/w4a8-fp/model.safetensors
             --tokenizer ${LOWBIT_STORIES}/tok512.bin --prompt "Once upon a time" --temperature 0 --max-new-tokens 16)
    set_tests_properties(cli_run_generate_single_file PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-fp
                         PASS_REGULAR_EXPRESSION "^Once upon a time[^\n]+\n")
    # Without --tokenizer: the library's message, and the flag that names one.
    add_test(NAME cli_run_generate_single_file_no_tokenizer COMMAND ${LOWBIT_CLI} generate
             ${_run_dir}/w4a8-fp/model.safetensors --prompt "Once upon a time")
    set_tests_properties(cli_run_generate_single_file_no_tokenizer PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-fp
                         PASS_REGULAR_EXPRESSION "no tokenizer beside [^\n]*: name the tokenizer file with --tokenizer")
    add_test(NAME cli_run_bench_checkpoint COMMAND ${LOWBIT_CLI} bench ${_run_dir}/w4a8-int/model.safetensors -p 16 -n 8 --reps 1)
    set_tests_properties(cli_run_bench_checkpoint PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-int
                         PASS_REGULAR_EXPRESSION "tg8")
    # A weight-only checkpoint on bf16 activations (--activations bf16: every layer's input
    # rounded to bf16, the kernels' 16-bit input) evaluates exactly like eval --recipe
    # --activations bf16 on the source; generate and bench take the flag too. An fp32 model
    # has no weight-only layers to round for, and a checkpoint's A8 layers keep their format.
    set(_q16 ${_run_dir}/w4a16-int4)
    lowbit_add_fresh_dir(cli_run_fresh_w4a16 ${_q16})
    add_test(NAME cli_run_quantize_w4a16 COMMAND ${LOWBIT_CLI} quantize ${LOWBIT_STORIES_ST} -o ${_q16}/
             --recipe w4a16-int4 --calib ${LOWBIT_STORIES_TOK} --calib-samples 4 --calib-inputs fp32 --quiet)
    set_tests_properties(cli_run_quantize_w4a16 PROPERTIES FIXTURES_SETUP cli_run_q_w4a16
                         FIXTURES_REQUIRED cli_run_fresh_w4a16)
    lowbit_add_eval_equal(cli_run_eval_equal_w4a16_bf16 cli_run_q_w4a16
                          "${_q16}|--activations|bf16|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40"
                          "${LOWBIT_STORIES_ST}|--recipe|w4a16-int4|--activations|bf16|--calib|${LOWBIT_STORIES_TOK}|--calib-docs|4|--tokens|${LOWBIT_STORIES_TOK}|--max-docs|40")
    add_test(NAME cli_run_eval_bf16_describes COMMAND ${LOWBIT_CLI} eval ${_q16} --activations bf16 --tokens ${LOWBIT_STORIES_TOK}
             --max-docs 4 --quiet)
    set_tests_properties(cli_run_eval_bf16_describes PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a16 PASS_REGULAR_EXPRESSION
                         "weight-only layers on bf16 activations\nlayers +1 x fp32, 35 x recipe w4a16-int4 \\+ bf16 activations")
    add_test(NAME cli_run_generate_bf16 COMMAND ${LOWBIT_CLI} generate ${_q16} --prompt "Once upon a time"
             --temperature 0 --max-new-tokens 16 --activations bf16)
    set_tests_properties(cli_run_generate_bf16 PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a16
                         PASS_REGULAR_EXPRESSION "^Once upon a time[^\n]+\n")
    add_test(NAME cli_run_bench_f16 COMMAND ${LOWBIT_CLI} bench ${_q16} -p 16 -n 4 --reps 1 --activations f16 --json)
    set_tests_properties(cli_run_bench_f16 PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a16 PASS_REGULAR_EXPRESSION "\"test\":\"tg4\"")
    add_test(NAME cli_run_generate_bf16_fp32_model COMMAND ${LOWBIT_CLI} generate ${LOWBIT_STORIES}/stories260K.bin
             --prompt "Hi" --activations bf16)
    set_tests_properties(cli_run_generate_bf16_fp32_model PROPERTIES PASS_REGULAR_EXPRESSION
                         "bf16 activations are for a quantized model's weight-only layers")
    add_test(NAME cli_run_bench_bad_activations COMMAND ${LOWBIT_CLI} bench ${LOWBIT_STORIES}/stories260K.bin --activations int8)
    set_tests_properties(cli_run_bench_bad_activations PROPERTIES PASS_REGULAR_EXPRESSION
                         "--activations: unknown activation type 'int8' \\(f32, f16, bf16\\)")
    add_test(NAME cli_run_eval_checkpoint_int8 COMMAND ${LOWBIT_CLI} eval ${_run_dir}/w4a8-int --tokens ${LOWBIT_STORIES_TOK}
             --activations int8)
    set_tests_properties(cli_run_eval_checkpoint_int8 PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-int
                         PASS_REGULAR_EXPRESSION "with --activations only f32, f16 or bf16")
    add_test(NAME cli_run_eval_recipe_int8 COMMAND ${LOWBIT_CLI} eval ${LOWBIT_STORIES_ST} --tokens ${LOWBIT_STORIES_TOK}
             --recipe w4a16-int4 --activations int8)
    set_tests_properties(cli_run_eval_recipe_int8 PROPERTIES PASS_REGULAR_EXPRESSION
                         "a recipe sets its own activation format; with --recipe, --activations takes f32, f16 or bf16")
    add_test(NAME cli_run_eval_requantize COMMAND ${LOWBIT_CLI} eval ${_run_dir}/w4a8-int --tokens ${LOWBIT_STORIES_TOK} --recipe w4a8-int)
    set_tests_properties(cli_run_eval_requantize PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-int
                         PASS_REGULAR_EXPRESSION "is a lowbit checkpoint \\(already quantized\\)")
  endif()
endif()

# The example programs (examples/programs/): each runs and prints its result line.
foreach(entry "01_convert_quantize|g32:mx +4\\.250 bits/weight|" "02_pack_gemm|W4A8 +kernel|" "03_quantize_linear|SmoothQuant\\+ \\+ GPTQ \\+ LoRC16 +output SQNR|")
  string(REPLACE "|" ";" entry "${entry}")
  list(GET entry 0 name)
  list(GET entry 1 expect)
  if(TARGET example_${name})
    add_test(NAME example_${name} COMMAND example_${name})
    set_tests_properties(example_${name} PROPERTIES PASS_REGULAR_EXPRESSION "${expect}")
  endif()
endforeach()
if(TARGET example_04_generate AND TARGET lowbit_cli AND EXISTS ${LOWBIT_STORIES_ST})
  add_test(NAME example_04_generate COMMAND example_04_generate ${CMAKE_CURRENT_BINARY_DIR}/cli_run/w4a8-int "Once upon a time")
  set_tests_properties(example_04_generate PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-int
                       PASS_REGULAR_EXPRESSION "^Once upon a time[^\n]+\n\\[[0-9]+ prompt tokens")
endif()
if(TARGET example_04_generate AND TARGET lowbit_cli AND EXISTS ${LOWBIT_STORIES_ST} AND EXISTS ${LOWBIT_STORIES_TOK})
  # A lone single file carries no tokenizer: the third argument names it.
  add_test(NAME example_04_generate_single_file COMMAND example_04_generate
           ${CMAKE_CURRENT_BINARY_DIR}/cli_run/w4a8-fp/model.safetensors "Once upon a time" ${LOWBIT_STORIES}/tok512.bin)
  set_tests_properties(example_04_generate_single_file PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-fp
                       PASS_REGULAR_EXPRESSION "^Once upon a time[^\n]+\n\\[[0-9]+ prompt tokens")
endif()
if(TARGET lowbit_cli AND EXISTS ${LOWBIT_STORIES_ST})
  add_test(NAME cli_run_compare_checkpoint COMMAND ${LOWBIT_CLI} compare ${CMAKE_CURRENT_BINARY_DIR}/cli_run/w4a8-int
           --recipes int4:g32 --probe-tokens 4)
  set_tests_properties(cli_run_compare_checkpoint PROPERTIES FIXTURES_REQUIRED cli_run_q_w4a8-int
                       PASS_REGULAR_EXPRESSION "is a lowbit checkpoint \\(already quantized\\)")
endif()
