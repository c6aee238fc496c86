# End-to-end probes of the `lowbit` program for issue 15 ("no input is ever overwritten,
# every written file reads back"): output paths that are device nodes, FIFOs, symlinks or
# inputs, inputs that are FIFOs or directories, a mount-free disk-full case (RLIMIT_FSIZE),
# and the messages of bad arguments. Each runs in its own scratch directory under
# hardening/ and checks the exit code, a line of the output and what is left on disk.
if(TARGET lowbit_cli)
  lowbit_test_dir(_hd hardening)
  set(_tiny ${_hd}/tiny.safetensors)

  # lowbit_hardening_probe(NAME SCRIPT [PASS regex]): runs SCRIPT with sh in a fresh directory
  # ${_hd}/NAME, with $L = the program and $T = a tiny checkpoint (made by the fixture).
  function(lowbit_hardening_probe name script)
    cmake_parse_arguments(P "" "PASS" "" ${ARGN})
    set(dir ${_hd}/${name})
    add_test(NAME ${name} COMMAND sh -c "rm -rf '${dir}' && mkdir -p '${dir}' && cd '${dir}' && L='${LOWBIT_CLI}' T='${_tiny}' && ${script}")
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED hardening_tiny TIMEOUT 60)
    if(P_PASS)
      set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${P_PASS}")
    endif()
  endfunction()

  add_test(NAME hardening_setup COMMAND ${LOWBIT_CLI} synth ${_tiny} --size-gb 0.0005)
  set_tests_properties(hardening_setup PROPERTIES FIXTURES_SETUP hardening_tiny)

  # ---- outputs (items 1, 5): only a regular file or nothing is replaced ------------------
  # A device node: refused (checked, never opened for writing), and still a device after.
  lowbit_hardening_probe(hardening_out_device
    "! $L synth /dev/null --size-gb 0.0001 2>err && test -c /dev/null && cat err"
    PASS "'/dev/null' is a character device; only a regular file may be replaced")
  lowbit_hardening_probe(hardening_out_device_quantize
    "! $L quantize $T -o /dev/null --quiet 2>err && test -c /dev/null && cat err"
    PASS "is a character device")
  # A FIFO: refused before any work, and still a FIFO.
  lowbit_hardening_probe(hardening_out_fifo
    "mkfifo f && ! $L quantize $T -o f --quiet 2>err && test -p f && cat err" PASS "'f' is a FIFO")
  lowbit_hardening_probe(hardening_out_directory
    "mkdir d && ! $L synth d 2>err && test -d d && cat err" PASS "'d' is a directory")
  # A symlink to a regular file: followed, the target replaced, the link kept.
  lowbit_hardening_probe(hardening_out_symlink
    "echo old > target && ln -s target link && $L quantize $T -o link --quiet >/dev/null && test -L link && $L inspect target"
    PASS "qweight")
  lowbit_hardening_probe(hardening_out_dangling_symlink
    "ln -s missing link && ! $L synth link 2>err && test -L link && test ! -e missing && cat err"
    PASS "symbolic link to a missing file")
  # Disk full without a mount: RLIMIT_FSIZE. Killed by SIGXFSZ mid-write, or (signal
  # ignored) failing with EFBIG: either way nothing under the name and no temporary left.
  lowbit_hardening_probe(hardening_out_file_size_kill
    "(ulimit -f 64; exec $L synth out.safetensors --size-gb 0.001) ; test ! -e out.safetensors && test -z \"$(ls -A)\" && echo clean"
    PASS "(^|\n)clean\n")
  lowbit_hardening_probe(hardening_out_file_size_error
    "(trap '' XFSZ; ulimit -f 64; exec $L synth out.safetensors --size-gb 0.001) 2>err; test ! -e out.safetensors && test \"$(ls -A)\" = err && cat err"
    PASS "File too large")
  # A temporary left by a killed writer (pid 2^22 + 1 exists on no default system) is removed.
  lowbit_hardening_probe(hardening_out_stale_temporary
    "echo x > .out.lowbit-tmp-4194305-0 && $L synth out >/dev/null && test ! -e .out.lowbit-tmp-4194305-0 && ls -A"
    PASS "^out\n$")

  # ---- no output is an input (item 2) ----------------------------------------------------
  lowbit_hardening_probe(hardening_out_is_input
    "cp $T in.safetensors && ! $L quantize in.safetensors -o in.safetensors --quiet 2>err && cat err"
    PASS "is an input file|is the input file")
  lowbit_hardening_probe(hardening_accuracy_json_is_input
    "cp $T in.safetensors && cp in.safetensors keep && ! $L accuracy --stories in.safetensors --json-out in.safetensors 2>err && cmp in.safetensors keep && cat err"
    PASS "is the input file")
  # Needs cmd_quantize to call lowbit::check_outputs (see docs/design.md, "Outputs"):
  lowbit_hardening_probe(hardening_quantize_json_is_input
    "cp $T in.safetensors && cp in.safetensors keep && ! $L quantize in.safetensors -o out.safetensors --json-out in.safetensors --quiet 2>err; cmp in.safetensors keep && test ! -e out.safetensors && cat err"
    PASS "is the input file")
  lowbit_hardening_probe(hardening_quantize_json_is_output
    "! $L quantize $T -o out.safetensors --json-out out.safetensors --quiet 2>err; test ! -e out.safetensors && cat err"
    PASS "are the same file")
  # A sharded input (index + one shard + config.json): -o equal to the index or config.json.
  set(_sharded "mkdir m && printf '\\100\\000\\000\\000\\000\\000\\000\\000%s' '{\"x.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}' > m/s.safetensors && printf '\\000\\000\\200\\077\\000\\000\\000\\100\\000\\000\\100\\100\\000\\000\\200\\100' >> m/s.safetensors && printf '{\"weight_map\":{\"x.weight\":\"s.safetensors\"}}' > m/model.safetensors.index.json && echo '{}' > m/config.json && cp -r m keep")
  lowbit_hardening_probe(hardening_quantize_out_is_index
    "${_sharded} && ! $L quantize m/model.safetensors.index.json -o m/model.safetensors.index.json --group 0 --quiet 2>err; diff -r m keep && cat err"
    PASS "input")
  lowbit_hardening_probe(hardening_quantize_out_is_config
    "${_sharded} && ! $L quantize m -o m/config.json --group 0 --quiet 2>err; diff -r m keep && cat err"
    PASS "input|exists and is not a directory")
  lowbit_hardening_probe(hardening_quantize_sharded_ok
    "${_sharded} && $L quantize m -o out.safetensors --group 0 --quiet" PASS "1 of 1 tensors quantized")
  # --json to a directory that does not exist: fails before the checkpoint is written.
  lowbit_hardening_probe(hardening_quantize_json_unwritable
    "! $L quantize $T -o out.safetensors --json-out nodir/r.json --quiet 2>err; test ! -e out.safetensors && cat err"
    PASS "nodir")

  # ---- inputs (items 7, 17) --------------------------------------------------------------
  lowbit_hardening_probe(hardening_in_fifo
    "mkfifo f && ! timeout 20 $L inspect f 2>err; cat err" PASS "'f' is a FIFO, expected a regular file")
  lowbit_hardening_probe(hardening_calib_directory
    "mkdir d && ! $L compare $T --recipes int4:g32 --calib d --quiet 2>err; cat err"
    PASS "--calib 'd' is a directory|Llama")
  lowbit_hardening_probe(hardening_compare_group_overflow
    "! $L compare $T --recipes int4:g99999999999 --quiet 2>err; cat err" PASS "group size '99999999999'")
  # Scheme flags go through the library's one parser per enum; the message names the flag.
  lowbit_hardening_probe(hardening_weights_flag_named
    "! $L quantize $T -o o.safetensors --weights fp5 --quiet 2>err; test ! -e o.safetensors && cat err"
    PASS "--weights: unknown element format 'fp5'")
  lowbit_hardening_probe(hardening_activations_flag_named
    "! $L quantize $T -o o.safetensors --activations int4 --quiet 2>err; test ! -e o.safetensors && cat err"
    PASS "--activations: unknown activation format 'int4'")
  lowbit_hardening_probe(hardening_scale_flag_named
    "! $L quantize $T -o o.safetensors --scale pow3 --quiet 2>err; test ! -e o.safetensors && cat err"
    PASS "--scale: expected fp32, m1, m2, mx or nvfp4, got 'pow3'")
  # ---- silent changes (item 18) ----------------------------------------------------------
  lowbit_hardening_probe(hardening_group_with_mx
    "! $L quantize $T -o o.safetensors --weights fp4 --group 7 --scale mx --quiet 2>err; test ! -e o.safetensors && cat err"
    PASS "--group 7 --scale mx: .*the mx scale fixes the group size at 32")
  lowbit_hardening_probe(hardening_lorc_rank_reported
    "$L quantize $T -o o.safetensors --lorc 100000 --quiet" PASS "LoRC rank 100000 reduced to")

  # ---- output text (items 16, 20, 21, 22) ------------------------------------------------
  # A tensor named "a<ESC>[2Jb" (clear screen): printed escaped.
  lowbit_hardening_probe(hardening_inspect_escapes
    "printf '\\100\\000\\000\\000\\000\\000\\000\\000%s\\000\\000\\000\\000' '{\"a\\u001b[2Jb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}' > esc.safetensors && $L inspect esc.safetensors | tr '\\033' '!'"
    PASS "a\\\\x1b\\[2Jb")
  lowbit_hardening_probe(hardening_formats_json
    "$L formats --json --no-throughput" PASS "\"name\": \"float4_e2m1fn\"")
  # One --json convention (item 19): --json is a flag that prints JSON to stdout, --json-out
  # FILE writes it to a file; `accuracy --json FILE` is refused, not taken as a file name.
  lowbit_hardening_probe(hardening_accuracy_json_stdout
    "$L accuracy --no-stories --recipe w8a8-fp8 --tokens 16 --json --quiet > out && test \"$(head -c 1 out)\" = '[' && grep -c recipe out"
    PASS "^[1-9][0-9]*\n$")
  lowbit_hardening_probe(hardening_accuracy_json_takes_no_file
    "! $L accuracy --no-stories --tokens 16 --json r.json --quiet 2>err; test ! -e r.json && cat err"
    PASS "r.json")
  # inspect and quantize report the same bits/weight for a layer with LoRC.
  lowbit_hardening_probe(hardening_bits_per_weight_agree
    "$L quantize $T -o o.safetensors --weights int4 --group 32 --lorc 4 --json > q.json && $L inspect o.safetensors --json > i.json && grep -o '\"bits_per_weight\": [0-9.]*' q.json | sed -n 2p > a && grep -o '\"bits_per_weight\": [0-9.]*' i.json | head -1 > b && cat a b && cmp a b && echo agree"
    PASS "agree")
  if(EXISTS ${LOWBIT_STORIES_ST})
    # The default data path does not depend on the working directory.
    lowbit_hardening_probe(hardening_accuracy_default_path
      "cd / && $L accuracy --recipe w8a8-fp8 --tokens 16 --json-out ${_hd}/hardening_accuracy_default_path/r.json --quiet >/dev/null && cat ${_hd}/hardening_accuracy_default_path/r.json"
      PASS "stories260k_sqnr_db\": [0-9]")
    set_tests_properties(hardening_accuracy_default_path PROPERTIES TIMEOUT 300)
  endif()
endif()
