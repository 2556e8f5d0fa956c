"""A tiny llama-architecture model in GGUF, random weights, for trying real engines on a CPU:
``python -m computepool.serving.engines.tiny_gguf OUT.gguf`` (needs the ``gguf`` package).

It is a real model file that llama.cpp loads and runs (2 layers, 64 wide, a ~300-token
SentencePiece vocabulary with the 256 byte tokens so any text tokenizes); its output is noise.
The end-of-text token's output row is zero, so greedy decoding does not stop early and an
answer has ``max_tokens`` tokens. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

WORDS = ("the", "pool", "serves", "tokens", "on", "real", "engines", "hello", "world", "a",
         "is", "of", "to", "and", "in", "car", "drive", "model", "train", "chat")  # fmt: skip


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """SentencePiece pieces, scores and types: <unk>, <s>, </s>, 256 bytes, words, letters."""
    unknown, control, normal, byte = 2, 3, 1, 6
    tokens = ["<unk>", "<s>", "</s>"]
    types = [unknown, control, control]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [byte] * 256
    pieces = ["▁" + w for w in WORDS] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["▁"]
    tokens += pieces
    types += [normal] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, types


def write_tiny_llama(
    path: str | Path, layers: int = 2, width: int = 64, heads: int = 4, ff: int = 128,
    context: int = 512, seed: int = 0,
) -> Path:  # fmt: skip
    import gguf

    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("cpool-tiny-llama")
    w.add_context_length(context)
    w.add_embedding_length(width)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(width // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5 / np.sqrt(shape[-1])).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(n_vocab, width))
    w.add_tensor("output_norm.weight", np.ones(width, dtype=np.float32))
    out = rng.standard_normal((n_vocab, width)).astype(np.float32)
    out[2] = 0.0  # </s> never wins a greedy step
    w.add_tensor("output.weight", out)
    for i in range(layers):
        b = f"blk.{i}"
        w.add_tensor(f"{b}.attn_norm.weight", np.ones(width, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"{b}.{name}.weight", rand(width, width))
        w.add_tensor(f"{b}.ffn_norm.weight", np.ones(width, dtype=np.float32))
        w.add_tensor(f"{b}.ffn_gate.weight", rand(ff, width))
        w.add_tensor(f"{b}.ffn_up.weight", rand(ff, width))
        w.add_tensor(f"{b}.ffn_down.weight", rand(width, ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="write a tiny random llama model in GGUF")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args(argv)
    print(write_tiny_llama(args.out, layers=args.layers, width=args.width))


if __name__ == "__main__":
    main()
