# Interop check (lowbit issue 13): compressed-tensors' own decompressors (each format's
# decompress_weight, from the compressed-tensors source) read lowbit's compressed-tensors
# exports; the decompressed weights, run in transformers' Llama (fp32, CPU), must give the
# perplexity `lowbit eval DIR --tokens eval_tinystories_val_tok512.u16 --max-docs 20` gives for
# the same directory (same protocol: documents split at BOS, first 20, at most 512 tokens).
#
# Not part of CI (it needs torch and transformers, which CI does not have). Run where they are:
#   CT_SRC=/path/to/compressed-tensors/src python3 ct_decompress_check.py TOKENS.u16 name=DIR ...
# CT_SRC: the `src` folder of a compressed-tensors checkout (never copied into lowbit).
# shim_loguru/ and shim_pydantic/ stand in for loguru and pydantic only where they are missing (the device's Python
# 3.12 has neither): enough for compressed_tensors' modules to define their classes; the
# script builds no pydantic model. CT_FP32_UNPACK=1: NVFP4 unpacked to float32 instead of the
# source's default bfloat16. Results and commands: docs/interop.md, "Checked against
# compressed-tensors' own decompressors".
import json, math, os, sys, traceback, types
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("CT_SRC", os.path.join(here, "src")))
for mod in ("loguru", "pydantic"):
    try:
        __import__(mod)
    except ImportError:
        sys.path.insert(0, os.path.join(here, "shim_" + mod))
import numpy as np
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

torch.set_grad_enabled(False)
toks = np.fromfile(sys.argv[1], dtype="<u2").astype(np.int64).tolist()

def documents(tokens, bos=1, max_docs=20, max_len=512):
    starts = [i for i, t in enumerate(tokens) if i == 0 or t == bos]
    docs = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else len(tokens)
        docs.append(tokens[s:e][:max_len])
    return docs[:max_docs]

def ppl(model, max_len):
    nll, n = 0.0, 0
    for d in documents(toks, max_len=max_len):
        if len(d) < 2:
            continue
        lp = torch.log_softmax(model(torch.tensor([d])).logits[0].double(), dim=-1)
        nll -= lp[:-1].gather(1, torch.tensor(d[1:])[:, None]).sum().item()
        n += len(d) - 1
    return math.exp(nll / n), n

def load(path):
    cfg = json.load(open(os.path.join(path, "config.json")))
    qc = cfg.pop("quantization_config", None)
    config = LlamaConfig(**cfg)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).float().eval()
    sd = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(path, f)))
    own = model.state_dict()
    model.load_state_dict({k: v.float() for k, v in sd.items() if k in own}, strict=False)
    done = 0
    if qc is not None:
        import compressed_tensors.compressors as C
        from compressed_tensors.compressors.quantized_compressors import pack_quantized, fp4_quantized, naive_quantized
        grp = next(iter(qc["config_groups"].values()))
        fmt = grp["format"]
        cls = {"pack-quantized": pack_quantized.PackedQuantizationCompressor,
               "nvfp4-pack-quantized": fp4_quantized.NVFP4PackedCompressor,
               "mxfp4-pack-quantized": fp4_quantized.MXFP4PackedCompressor,
               "float-quantized": naive_quantized.FloatQuantizationCompressor,
               "int-quantized": naive_quantized.IntQuantizationCompressor}[fmt]
        if os.environ.get("CT_FP32_UNPACK"):
            # Their unpack defaults to bfloat16 (and dequantize then works in that dtype):
            # the same functions asked for float32, to compare with lowbit's fp32 weights.
            orig = fp4_quantized.unpack_fp4_from_uint8
            if not getattr(orig, "_fp32", False):
                def unpack32(a, m, n, dtype=None, _o=orig):
                    return _o(a, m, n, dtype=torch.float32)
                unpack32._fp32 = True
                fp4_quantized.unpack_fp4_from_uint8 = unpack32
        comp = cls.__new__(cls)
        args = types.SimpleNamespace(**grp["weights"])
        layers = sorted({k.rsplit(".", 1)[0] for k in sd if k.endswith(("weight_packed", "weight_scale"))})
        for name in layers:
            data = {k.rsplit(".", 1)[1]: v for k, v in sd.items() if k.rsplit(".", 1)[0] == name}
            if "weight_shape" in data:
                data["weight_shape"] = data["weight_shape"].tolist()
            w = comp.decompress_weight(data, args)
            mod = model.get_submodule(name)
            assert tuple(mod.weight.shape) == tuple(w.shape), (name, mod.weight.shape, w.shape)
            mod.weight.data.copy_(w.float())
            done += 1
        acts = grp.get("input_activations")
        if acts and acts.get("type") == "float" and acts.get("strategy") == "token":
            # Dynamic per-token FP8 activations: s = max|x| / 448, codes = e4m3(x / s).
            def fq(mod, inp):
                x = inp[0]
                s = x.abs().amax(dim=-1, keepdim=True) / 448.0
                s = torch.where(s == 0, torch.ones_like(s), s)
                return ((x / s).to(torch.float8_e4m3fn).float() * s,)
            for name in layers:
                model.get_submodule(name).register_forward_pre_hook(fq)
    if config.tie_word_embeddings:
        model.tie_weights()
    return model, config, done

for arg in sys.argv[2:]:
    name, path = arg.split("=", 1)
    try:
        model, config, n = load(path)
        p, cnt = ppl(model, config.max_position_embeddings)
        print(f"RESULT {name} decompressed_layers={n} perplexity={p!r} predicted={cnt}", flush=True)
    except Exception:
        print(f"RESULT {name} ERROR", flush=True)
        traceback.print_exc(limit=6)
