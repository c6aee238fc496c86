#!/usr/bin/env python3
"""Expected values for the hand-written tokenizer.json fixtures of tests/test_tokenizer_hf.cpp.

Each case is a small spec (components + model options); build() turns it into a complete
tokenizer.json exactly as the C++ test's build_fixture() does. Running this with Hugging Face
`tokenizers` installed prints the C++ table of cases (spec, texts, and the ids / decodings the
real implementation gives), which is pasted into tests/test_tokenizer_hf_cases.inc:

    python3 tests/hf_tokenizer_fixtures.py > tests/test_tokenizer_hf_cases.inc

Not run by CI (it needs pip's `tokenizers`); the committed table is the expectation.
"""
import json
import sys

BASE_MERGES = [["h", "e"], ["l", "l"], ["l", "o"], ["he", "ll"], ["hell", "o"], ["o", " "],
               [" ", "w"], ["w", "o"], ["r", "l"], ["wo", "rl"], ["worl", "d"], ["▁", "h"],
               ["▁h", "e"], ["▁", "w"], ["Ġ", "w"], ["Ġw", "o"], ["1", "2"], ["12", "3"],
               ["a", "b"], ["ab", "c"], ["x", "y"], ["<", "x"], ["o", "r"], ["e", "l"],
               ["d", " "]]


def build(spec):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}

    def add(t):
        if t not in vocab:
            vocab[t] = len(vocab)

    for c in range(32, 127):
        add(chr(c))
    for t in ["▁", "Ġ", "Ċ", "ĉ"]:
        add(t)
    if spec.get("byte_tokens"):
        for b in range(256):
            add("<0x%02X>" % b)
    for t in spec.get("extra_vocab", []):
        add(t)
    merges = spec.get("merges", BASE_MERGES)
    for a, b in merges:
        add(a)
        add(b)
        add(a + b)
    # Ids of added tokens as tokenizers assigns them: the vocabulary's id when the content is
    # in it, else the next free id (it ignores, with a warning, the ids a file gives).
    added_tokens = []
    next_id = len(vocab)
    for a in spec.get("added_tokens", []):
        a = dict(a)
        if a["content"] in vocab:
            a["id"] = vocab[a["content"]]
        else:
            a["id"] = next_id
            next_id += 1
        added_tokens.append(a)
    model = {
        "type": "BPE", "dropout": None, "unk_token": spec.get("unk"),
        "continuing_subword_prefix": None, "end_of_word_suffix": None,
        "fuse_unk": spec.get("fuse_unk", False), "byte_fallback": spec.get("byte_fallback", False),
        "ignore_merges": spec.get("ignore_merges", False), "vocab": vocab,
        "merges": [a + " " + b for a, b in merges] if spec.get("merges_as_strings") else merges,
    }
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added_tokens,
        "normalizer": spec.get("normalizer"), "pre_tokenizer": spec.get("pre_tokenizer"),
        "post_processor": spec.get("post_processor"), "decoder": spec.get("decoder"),
        "model": model,
    }


def added(content, special=True, lstrip=False, rstrip=False, single_word=False, normalized=False):
    return {"content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern},
            "behavior": behavior, "invert": invert}


def metaspace(scheme, split_=True):
    return {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split_}


BYTE_LEVEL_DEC = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
TEMPLATE = {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
SPECIALS = [added("<unk>"), added("<s>"), added("</s>")]
WORDS = ["hello world", "hello  world ", " hello", "oo woo", "abc xy 123"]

CASES = [
    ("nfkc", {"normalizer": {"type": "NFKC"}},
     ["\ufb01 \u2460 \uff48\uff45\uff4c\uff4c\uff4f", "e\u0301 \u00e9", "\u2126 x\u00b2"]),
    ("nfc", {"normalizer": {"type": "NFC"}, "extra_vocab": ["\u00e9", "\u00c5"]},
     ["e\u0301llo", "A\u030a \u00c5", "\ufb01"]),
    ("lowercase", {"normalizer": {"type": "Lowercase"}, "extra_vocab": ["i\u0307", "\u0131"]},
     ["HeLLo WORLD", "\u0130 I \u00c9"]),
    ("prepend_replace_string", {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}, WORDS + [""]),
    ("replace_regex", {"normalizer": {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "_"}},
     ["hello   world\t\tok", " a\nb "]),
    ("replace_empty_string", {"normalizer": {"type": "Replace", "pattern": {"String": ""}, "content": "-"}},
     ["abc", "h"]),
    ("normalizer_sequence", {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": "o+"}, "content": "0"}]}},
     ["HELLO WOOORLD", "\uff28ello"]),
] + [
    ("split_%s%s%s" % (b.lower(), "_invert" if inv else "", "_string" if not rx else ""),
     {"pre_tokenizer": split(p, b, inv, rx)}, WORDS + ["  ", "oooo"])
    for (p, rx) in [("o+| ", True)] for b in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]
    for inv in [False, True]
] + [
    ("split_string_isolated", {"pre_tokenizer": split(" ", "Isolated", False, False)}, WORDS),
    ("split_string_removed", {"pre_tokenizer": split("o", "Removed", False, False)}, WORDS),
    ("split_empty_match_regex", {"pre_tokenizer": split("x*", "MergedWithPrevious")}, ["abxc", "xx"]),
] + [
    ("bytelevel_prefix%d_regex%d" % (ps, rx),
     {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": bool(ps), "trim_offsets": True, "use_regex": bool(rx)},
      "decoder": BYTE_LEVEL_DEC, "extra_vocab": ["Ã", "©", "Ã©", "Ġh", "'s"]},
     ["hello world's 123", "Hello\nworld \u00e9\t!", " hello", "caf\u00e9"])
    for ps in [0, 1] for rx in [0, 1]
] + [
    ("metaspace_%s_split%d" % (scheme, sp),
     {"pre_tokenizer": metaspace(scheme, bool(sp)), "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": bool(sp)},
      "added_tokens": SPECIALS},
     ["hello world", "<s>hello world", "  hello", "\u2581hello", ""])
    for scheme in ["always", "first", "never"] for sp in [0, 1]
] + [
    ("digits_individual", {"pre_tokenizer": {"type": "Digits", "individual_digits": True}}, ["abc 12345 x9", "\u0663\u0664 \u00b2"]),
    ("digits_grouped", {"pre_tokenizer": {"type": "Digits", "individual_digits": False}}, ["abc 12345 x9", "\u0663\u0664 \u00b2"]),
    ("pretok_sequence", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": False}, split(" ", "MergedWithNext", False, False),
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "decoder": BYTE_LEVEL_DEC}, ["abc 123 hello world", "x1y2 z"]),
    ("added_tokens", {"normalizer": {"type": "Lowercase"}, "added_tokens": SPECIALS + [
        added("<x>"), added("<ls>", lstrip=True), added("<rs>", rstrip=True),
        added("sw", special=False, single_word=True), added("HELLO", special=False, normalized=True),
        added("<lr>", lstrip=True, rstrip=True, special=False), added("world", special=False)],
        "extra_vocab": ["<x>"]},
     ["a <x> b", "foo<x>bar", "a  <ls>  b", "a  <rs>  b", "a <lr>  <lr> b", "sw x sw_ swsw (sw)",
      "HELLO hello Hello", "<s>hello world</s>", "world worlds"]),
    ("merges_as_strings", {"merges_as_strings": True, "merges": [
        m for m in BASE_MERGES if " " not in m[0] + m[1]]}, WORDS),
    ("unk_no_fuse", {"unk": "<unk>", "added_tokens": SPECIALS}, ["h\u00e9\u00e9llo \u4e16\u754c!"]),
    ("unk_fuse", {"unk": "<unk>", "fuse_unk": True, "added_tokens": SPECIALS}, ["h\u00e9\u00e9llo \u4e16\u754c!"]),
    ("no_unk_dropped", {}, ["h\u00e9llo"]),
    ("byte_fallback", {"byte_tokens": True, "byte_fallback": True, "unk": "<unk>", "added_tokens": SPECIALS,
                       "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
                       "decoder": {"type": "Sequence", "decoders": [
                           {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                           {"type": "ByteFallback"}, {"type": "Fuse"},
                           {"type": "Strip", "content": " ", "start": 1, "stop": 1}]}},
     ["h\u00e9llo w\u00f6rld \u20ac", " x "]),
    ("ignore_merges", {"ignore_merges": True, "extra_vocab": ["hellp", "woorld"],
                       "pre_tokenizer": split(" ", "Removed", False, False)}, ["hellp woorld hello"]),
    ("template_and_no_decoder", {"post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}, TEMPLATE]},
        "added_tokens": SPECIALS}, WORDS + [""]),
]

# Decoder-only cases: ids decoded, no encoding. (Strip's stop must not reach past a token's
# start: tokenizers 0.23 panics there, lowbit stops.)
DECODE_CASES = [
    ("bytefallback_invalid", {"byte_tokens": True, "decoder": {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"}]}}, ["<0xE2>", "<0x82>", "a", "<0xE2>", "<0x82>", "<0xAC>", "<0xFF>", "b"]),
    ("strip_both", {"decoder": {"type": "Strip", "content": "h", "start": 2, "stop": 3},
                    "extra_vocab": ["hhhello", "ohhhh", "hhxhhh"]}, ["hhhello", "ohhhh", "hhxhhh"]),
    ("bytelevel_raw", {"decoder": BYTE_LEVEL_DEC, "extra_vocab": ["Ã", "©"]}, ["Ã", "©", "Ġ", "w", "Ã", "z"]),
    ("metaspace_never_dec", {"decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": True},
      "extra_vocab": ["\u2581\u2581w", "\u2581\u2581h"]}, ["\u2581", "h", "\u2581\u2581w"]),
    ("metaspace_always_dec", {"decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
      "extra_vocab": ["\u2581\u2581w", "\u2581\u2581h"]}, ["\u2581\u2581h", "\u2581w"]),
]


def cxx(s):
    out = '"'
    for ch in s.encode("utf-8"):
        if ch in (0x22, 0x5C):
            out += "\\" + chr(ch)
        elif 0x20 <= ch < 0x7F:
            out += chr(ch)
        else:
            out += '\\x%02x""' % ch
    return out + '"'


def main():
    from tokenizers import Tokenizer
    import tokenizers
    print("// Generated by tests/hf_tokenizer_fixtures.py with Hugging Face tokenizers %s." % tokenizers.__version__)
    print("// {name, spec JSON, text, ids with special tokens, ids without, decode(skip), decode(keep)}")
    print("const FixtureCase kCases[] = {")
    for name, spec, texts in CASES:
        tok = Tokenizer.from_str(json.dumps(build(spec)))
        for t in texts:
            ids = tok.encode(t).ids
            ids_plain = tok.encode(t, add_special_tokens=False).ids
            print("    {%s, %s, %s, {%s}, {%s}, %s, %s}," % (
                cxx(name), cxx(json.dumps(spec, ensure_ascii=False)), cxx(t),
                ", ".join(map(str, ids)), ", ".join(map(str, ids_plain)),
                cxx(tok.decode(ids, skip_special_tokens=True)), cxx(tok.decode(ids, skip_special_tokens=False))))
    print("};")
    print("// {name, spec JSON, ids, decode(ids)}")
    print("const DecodeCase kDecodeCases[] = {")
    for name, spec, toks in DECODE_CASES:
        tok = Tokenizer.from_str(json.dumps(build(spec)))
        ids = [tok.token_to_id(t) for t in toks]
        print("    {%s, %s, {%s}, %s}," % (cxx(name), cxx(json.dumps(spec, ensure_ascii=False)),
                                        ", ".join(map(str, ids)), cxx(tok.decode(ids))))
    print("};")

if __name__ == "__main__":
    sys.exit(main())
