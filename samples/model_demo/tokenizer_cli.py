#!/usr/bin/env python3
"""Text <-> token ids with the model's tokenizer (the tokenizer.json that prepare_model.py
wrote), so the C++ runner needs no tokenizer of its own.

    python3 tokenizer_cli.py encode "The capital of France is"      -> 504,3575,282,4649,314
    python3 tokenizer_cli.py encode --chat "Tell me about Persuasion."  (the model's chat format)
    python3 tokenizer_cli.py decode 7042,30,198                      -> text
    python3 tokenizer_cli.py decode --file generated.bin             (int32 little-endian ids)
    python3 tokenizer_cli.py encode --out prompt.bin "text"          (write int32 ids)
"""

import argparse
import os
import struct
import sys


def cache_dir():
    root = os.environ.get("STARKV_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "starkv")
    return os.path.join(root, "smollm2-135m")


def load_tokenizer(model_dir):
    from tokenizers import Tokenizer

    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: run prepare_model.py first")
    return Tokenizer.from_file(path)


def chat_prompt(user_text):
    """SmolLM2-Instruct's chat template (from the GGUF metadata), one user turn."""
    return ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
            "Hugging Face<|im_end|>\n<|im_start|>user\n" + user_text +
            "<|im_end|>\n<|im_start|>assistant\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=cache_dir())
    sub = ap.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="text -> comma-separated ids")
    enc.add_argument("text")
    enc.add_argument("--chat", action="store_true", help="wrap the text in the chat template")
    enc.add_argument("--out", help="also write the ids as int32 little-endian to this file")
    dec = sub.add_parser("decode", help="ids -> text")
    dec.add_argument("ids", nargs="?", help="comma-separated ids")
    dec.add_argument("--file", help="read int32 little-endian ids from this file instead")
    args = ap.parse_args()

    tok = load_tokenizer(args.model_dir)
    if args.command == "encode":
        text = chat_prompt(args.text) if args.chat else args.text
        ids = tok.encode(text).ids
        if args.out:
            with open(args.out, "wb") as f:
                f.write(struct.pack(f"<{len(ids)}i", *ids))
        print(",".join(map(str, ids)))
    else:
        if args.file:
            with open(args.file, "rb") as f:
                data = f.read()
            ids = list(struct.unpack(f"<{len(data) // 4}i", data[:len(data) // 4 * 4]))
        elif args.ids:
            ids = [int(x) for x in args.ids.replace(" ", "").split(",") if x]
        else:
            sys.exit("decode needs ids or --file")
        print(tok.decode(ids, skip_special_tokens=False))


if __name__ == "__main__":
    main()
