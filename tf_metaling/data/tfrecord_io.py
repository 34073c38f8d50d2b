"""TFRecord files of text or of encoded examples.

Text TFRecords hold one `tf.train.Example` per sentence with a ``text`` bytes
feature and a ``language`` bytes feature; they feed the MLM pipelines like
text files do. Example TFRecords hold encoded model inputs (int64 / float
lists of fixed length per key) so a preprocessed task can be read back
without the tokenizer. Files are written under a temporary name and renamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf

from tf_metaling.atomic_files import atomic_path

TEXT_FEATURES = {
    "text": tf.io.FixedLenFeature([], tf.string),
    "language": tf.io.FixedLenFeature([], tf.string),
}
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz")


def is_tfrecord_path(path) -> bool:
    return os.fspath(path).endswith(TFRECORD_SUFFIXES)


def _compression(path) -> str | None:
    return "GZIP" if os.fspath(path).endswith(".gz") else None


def write_text_tfrecord(path, texts: Iterable[str], language: str) -> int:
    """Writes sentences of one language; returns how many were written."""
    count = 0
    with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp, options=_compression(path)) as writer:
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{path}: sentence {count + 1} is empty or not a str: {text!r}")
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "text": _bytes_feature(text.encode("utf-8")),
                        "language": _bytes_feature(language.encode("utf-8")),
                    }
                )
            )
            writer.write(example.SerializeToString())
            count += 1
    return count


def text_tfrecord_dataset(paths) -> tf.data.Dataset:
    """Dataset of ``{"text", "language"}`` string scalars from text TFRecords."""
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    dataset = tf.data.TFRecordDataset(paths, compression_type=_compression(paths[0]))
    return dataset.map(
        lambda record: tf.io.parse_single_example(record, TEXT_FEATURES),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def write_example_tfrecord(path, examples: Iterable[Mapping[str, np.ndarray]]) -> int:
    """Writes dicts of numeric arrays (ints -> int64, floats -> float lists)."""
    count = 0
    with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp, options=_compression(path)) as writer:
        for example in examples:
            feature = {}
            for key, value in example.items():
                array = np.asarray(value).reshape(-1)
                if np.issubdtype(array.dtype, np.integer):
                    feature[key] = tf.train.Feature(
                        int64_list=tf.train.Int64List(value=array.tolist())
                    )
                elif np.issubdtype(array.dtype, np.floating):
                    feature[key] = tf.train.Feature(
                        float_list=tf.train.FloatList(value=array.tolist())
                    )
                else:
                    raise TypeError(
                        f"{path}: example {count + 1}, key {key!r}: expected ints or "
                        f"floats, got {array.dtype}."
                    )
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
            count += 1
    return count


def example_tfrecord_dataset(paths, shapes: Mapping[str, tuple], dtypes: Mapping[str, tf.DType]):
    """Reads `write_example_tfrecord` files back; ints are cast to int32."""
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    spec = {}
    for key, shape in shapes.items():
        dtype = dtypes[key]
        spec[key] = tf.io.FixedLenFeature(shape, tf.float32 if dtype.is_floating else tf.int64)

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        return {key: tf.cast(value, dtypes[key]) for key, value in parsed.items()}

    dataset = tf.data.TFRecordDataset(paths, compression_type=_compression(paths[0]))
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
