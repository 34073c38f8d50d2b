"""Checking and reading safetensors checkpoints (one file or shards) with numpy, before anything is built.

A Hugging Face checkpoint keeps its weights in ``model.safetensors`` or, for
large models, in shards listed by ``model.safetensors.index.json``. The
format: a little-endian u64 header length n, n bytes of JSON mapping each
tensor name to its ``dtype``, ``shape`` and ``data_offsets`` [begin, end)
into the data buffer that follows the header (an optional ``__metadata__``
entry holds strings). The safetensors library raises errors that name
neither the file nor the tensor; this module checks everything it can from
the headers first (the header is readable JSON, every entry is well formed,
the entries tile the data buffer exactly and the buffer ends where the file
does, every expected tensor is present with the expected shape and a
floating-point dtype), so a broken checkpoint is refused, naming the file
and the tensor, before any layer is built. Tensors are then read with
numpy, converted exactly to float32 (bfloat16 too, which numpy lacks) or
kept as float64.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct

import numpy as np

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# Bytes per element of every safetensors dtype; numpy dtypes of the readable ones.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
FLOAT_DTYPES = {"F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}
# A header larger than this is not a weights file's (real ones are well under 1 MB).
MAX_HEADER_BYTES = 100_000_000


class SafetensorsError(ValueError):
    """A safetensors file or shard index that cannot be used; the message names the file (and tensor)."""


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: its file, dtype, shape and absolute byte range in the file."""

    path: str
    name: str
    dtype: str
    shape: tuple
    begin: int
    end: int


def read_header(path) -> dict[str, TensorEntry]:
    """The tensors of one safetensors file, after checking the header against the file's length."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            prefix = file.read(8)
            if len(prefix) < 8:
                raise SafetensorsError(
                    f"{path}: {size} bytes, too short for a safetensors file (it starts with an 8-byte "
                    "header length)."
                )
            (header_length,) = struct.unpack("<Q", prefix)
            if header_length > min(size - 8, MAX_HEADER_BYTES):
                raise SafetensorsError(
                    f"{path}: header length {header_length} does not fit the file's {size} bytes; "
                    "not a safetensors file, or truncated."
                )
            raw = file.read(header_length)
    except OSError as error:
        raise SafetensorsError(f"{path}: cannot read ({error}).") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{path}: the header is not JSON ({error}); not a safetensors file.") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header is not a JSON object; not a safetensors file.")
    data_start = 8 + header_length
    entries = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(path, name, spec, data_start)
    # The entries must tile the data buffer: no gaps, no overlaps, ending where the file ends.
    position = data_start
    for entry in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            what = "overlaps the tensor before it" if entry.begin < position else "leaves a gap before it"
            raise SafetensorsError(
                f"{path}: tensor {entry.name!r} (bytes {entry.begin}-{entry.end}) {what}; the header is corrupt."
            )
        if entry.end > size:
            raise SafetensorsError(
                f"{path}: tensor {entry.name!r} needs bytes {entry.begin}-{entry.end} but the file has "
                f"{size} bytes: truncated."
            )
        position = entry.end
    if position != size:
        raise SafetensorsError(
            f"{path}: the header describes {position} bytes but the file has {size}: "
            "the file and its header do not belong together."
        )
    return entries


def _entry(path, name, spec, data_start) -> TensorEntry:
    def bad(what):
        return SafetensorsError(f"{path}: tensor {name!r}: {what}; the header is corrupt.")

    if not isinstance(spec, dict):
        raise bad(f"entry {spec!r} is not an object")
    dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise bad(f"unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise bad(f"shape {shape!r} is not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise bad(f"data_offsets {offsets!r} are not [begin, end]")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected:
        raise bad(f"{offsets[1] - offsets[0]} bytes for shape {shape} of {dtype} ({expected} bytes)")
    return TensorEntry(path, name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])


def read_index(directory) -> dict[str, TensorEntry]:
    """Every tensor of a directory's checkpoint: ``model.safetensors``, else the shards of its index.

    Raises `SafetensorsError` naming the file (and tensor) when neither file
    exists, the index is not a shard index, a shard is missing, or a tensor
    the index lists is not in its shard.
    """
    directory = os.fspath(directory)
    single = os.path.join(directory, SINGLE_FILE)
    if os.path.isfile(single):
        return read_header(single)
    index_path = os.path.join(directory, INDEX_FILE)
    if not os.path.isfile(index_path):
        raise SafetensorsError(f"{single}: missing (and no {INDEX_FILE}).")
    try:
        with open(index_path, encoding="utf-8") as file:
            index = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{index_path}: not readable JSON ({error}).") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise SafetensorsError(f'{index_path}: no "weight_map" object mapping tensor names to shard files.')
    shards = {}
    entries = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise SafetensorsError(
                f"{index_path}: tensor {name!r} maps to {shard!r}; expected a file name in {directory}."
            )
        if shard not in shards:
            shard_path = os.path.join(directory, shard)
            if not os.path.isfile(shard_path):
                raise SafetensorsError(
                    f"{index_path}: tensor {name!r} is in shard {shard_path}, which is missing."
                )
            shards[shard] = read_header(shard_path)
        if name not in shards[shard]:
            raise SafetensorsError(
                f"{index_path}: tensor {name!r} is mapped to {os.path.join(directory, shard)}, which does not hold it."
            )
        entries[name] = shards[shard][name]
    return entries


def check_tensors(entries: dict[str, TensorEntry], expected: dict[str, tuple], where: str) -> None:
    """Checks that every name of `expected` is in `entries` with that shape and a floating-point dtype.

    `where` names the checkpoint (its file, or its index) in the error about a
    missing tensor; other errors name the tensor's own file.
    """
    missing = [name for name in expected if name not in entries]
    if missing:
        shown = ", ".join(repr(name) for name in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise SafetensorsError(
            f"{where}: tensor {shown} missing ({len(missing)} of {len(expected)} expected tensors)."
        )
    for name, shape in expected.items():
        entry = entries[name]
        if entry.shape != tuple(shape):
            raise SafetensorsError(
                f"{entry.path}: tensor {name!r} has shape {list(entry.shape)}, expected {list(shape)} (from config.json)."
            )
        if entry.dtype not in FLOAT_DTYPES:
            raise SafetensorsError(
                f"{entry.path}: tensor {name!r} has dtype {entry.dtype}; expected one of {sorted(FLOAT_DTYPES)}."
            )


def read_tensor(entry: TensorEntry) -> np.ndarray:
    """The tensor's values, exactly: float64 for F64, float32 for F16, BF16 and F32."""
    count = math.prod(entry.shape)
    try:
        with open(entry.path, "rb") as file:
            file.seek(entry.begin)
            data = file.read(entry.end - entry.begin)
    except OSError as error:
        raise SafetensorsError(f"{entry.path}: cannot read tensor {entry.name!r} ({error}).") from None
    if len(data) != entry.end - entry.begin:
        raise SafetensorsError(
            f"{entry.path}: tensor {entry.name!r} runs past the end of the file (it changed)."
        )
    values = np.frombuffer(data, dtype=FLOAT_DTYPES[entry.dtype], count=count)
    if entry.dtype == "BF16":  # bfloat16 is the top half of a float32
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float64 if entry.dtype == "F64" else np.float32).reshape(entry.shape)


__all__ = [
    "INDEX_FILE",
    "SINGLE_FILE",
    "SafetensorsError",
    "TensorEntry",
    "check_tensors",
    "read_header",
    "read_index",
    "read_tensor",
]
