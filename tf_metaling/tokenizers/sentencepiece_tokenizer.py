"""XLM-R's SentencePiece tokenizer with fairseq ids, in the TensorFlow graph.

XLM-RoBERTa (and models that reuse its vocabulary, e.g. multilingual-e5) use a
SentencePiece model whose own ids are ``<unk>=0, <s>=1, </s>=2, pieces...``,
shifted to fairseq's ids: ``<s>=0, <pad>=1, </s>=2, <unk>=3``, piece ``i >= 3``
-> ``i + 1``, and ``<mask>`` appended as the last id, so the vocabulary has the
model's pieces + 2 ids. This is exactly keras-hub's `XLMRobertaTokenizer`, so a
converted XLM-R gets the ids it was trained on; the padding id is 1, not 0.

Sequences are packed like XLM-R's: ``<s> pieces </s>``, and pairs as
``<s> a </s></s> b </s>`` (segment ids all 0: XLM-R has no segment embeddings).

It is a `Tokenizer` like the WordPiece one (`tokenize`,
`tokenize_pretokenized`, `pack`, `encode`, `encode_pairs`, `detokenize`,
`id_to_token`, the ``*_id`` attributes), in the graph with tensorflow-text's
`SentencepieceTokenizer`; the model is a constant of the graph, so exported
SavedModels carry it. A model_dir keeps it as ``sentencepiece.model``.
"""

from __future__ import annotations

import functools
import hashlib
import os

import sentencepiece
import tensorflow as tf

from tf_metaling.atomic_files import atomic_path
from tf_metaling.errors import DataFormatError
from tf_metaling.tokenizers.tokenizer import Tokenizer, check_sequence_length, trim_pair

START_TOKEN, PAD_TOKEN, END_TOKEN, UNK_TOKEN, MASK_TOKEN = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
# Ops the in-graph tokenizer adds (tensorflow-text's SentencePiece ops); checked against
# traced graphs in tests/models/test_pretrained.py.
SENTENCEPIECE_OPS = (
    "SentencepieceOp",
    "SentencepieceTokenizeOp",
    "SentencepieceDetokenizeOp",
)


@functools.cache
def _shared_sentencepiece_model_class():
    from tensorflow.python.trackable import resource
    from tensorflow_text.python.ops import sentencepiece_tokenizer as text_sentencepiece

    class SharedSentencepieceModel(resource.TrackableResource):
        """A SentencePiece model resource named by the model's SHA-256 (not owned by a kernel)."""

        def __init__(self, model_proto: bytes):
            super().__init__()
            self._model = model_proto
            self._shared_name = "tf_metaling_sentencepiece_" + hashlib.sha256(model_proto).hexdigest()[:32]
            _ = self.resource_handle  # creates it

        def _create_resource(self):
            return text_sentencepiece.gen_sentencepiece_tokenizer.sentencepiece_op(
                model=self._model, shared_name=self._shared_name)

    return SharedSentencepieceModel


def _shared_model_resource(model_proto: bytes):
    return _shared_sentencepiece_model_class()(model_proto)


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model with XLM-R's fairseq ids.

    Args:
        model_proto: the serialized SentencePiece model (bytes).
        model_file: the file it came from (recorded, and copied by `save`).

    Example:
    >>> tokenizer = SentencePieceTokenizer.load("sentencepiece.bpe.model")  # doctest: +SKIP
    >>> tokenizer.encode(tf.constant(["Hallo Welt"]), sequence_length=8)["token_ids"]  # doctest: +SKIP
    """

    file_name = "sentencepiece.model"
    file_suffixes = (".spm", ".model")

    def __init__(self, model_proto: bytes, model_file: str | None = None, name: str = "tokenizer"):
        super().__init__(name=name)
        # Loaded when a tokenizer is built, not when the module is imported: tensorflow-text
        # registers custom ops, which modules that only read the constants do not need.
        import tensorflow_text as text

        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, TypeError) as error:
            raise DataFormatError(f"not a SentencePiece model ({error})", path=model_file) from None
        pieces = [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]
        expected = [UNK_TOKEN, START_TOKEN, END_TOKEN]
        if pieces[:3] != expected:
            raise DataFormatError(
                "XLM-R SentencePiece models start with <unk>, <s>, </s>",
                path=model_file,
                expected=str(expected),
                found=str(pieces[:3]),
            )
        self.model_file = model_file
        self._vocab = tuple([START_TOKEN, PAD_TOKEN, END_TOKEN, UNK_TOKEN] + pieces[3:] + [MASK_TOKEN])
        self.cls_id, self.pad_id, self.sep_id, self.unk_id = 0, 1, 2, 3
        self.mask_id = len(self._vocab) - 1
        self._model_proto = model_proto
        self._sentencepiece = text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
        # tensorflow-text's model resource belongs to the kernel that made it, and
        # `tf.random.set_seed` (every run's `keras.utils.set_random_seed`) clears the eager
        # kernel cache: the resource is deleted and every later call fails with "Resource
        # ... SentencepieceOp ... does not exist". Named by the model's hash, the resource lives
        # in the resource manager instead, shared by the tokenizers of one model.
        self._sentencepiece._model_resource = _shared_model_resource(model_proto)
        self._vocab_tensor = tf.constant(self._vocab, dtype=tf.string)

    @classmethod
    def load(cls, path) -> SentencePieceTokenizer:
        path = os.fspath(path)
        with open(path, "rb") as file:
            return cls(file.read(), model_file=path)

    def save(self, path) -> str:
        """Writes the SentencePiece model file; returns the path."""
        path = os.fspath(path)
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            file.write(self._model_proto)
        return path

    # ------------------------------------------------------------ in-graph ops
    def _to_fairseq(self, ids):
        # SentencePiece <unk>=0 -> 3; every other id i -> i + 1 (<s> 1 -> 0 is not produced).
        return tf.where(tf.equal(ids, 0), tf.constant(self.unk_id - 1, ids.dtype), ids) + 1

    def tokenize(self, strings) -> tf.RaggedTensor:
        """[B] strings -> int32 [B, (pieces)] (a scalar string gives [pieces])."""
        ids = self._sentencepiece.tokenize(tf.convert_to_tensor(strings, tf.string))
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self._to_fairseq, ids)
        return self._to_fairseq(ids)

    def tokenize_pretokenized(self, words) -> tf.RaggedTensor:
        """Already split words [B, (words)] -> int32 [B, (words), (pieces)], >= 1 piece per word."""
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(words, tf.string))
        return self._at_least_one_piece(words, self.tokenize(words.flat_values))

    def pack(self, pieces: tf.RaggedTensor, sequence_length: int) -> dict:
        """[B, (pieces)] -> ``<s> pieces </s>`` truncated and padded (with <pad>=1) to T."""
        check_sequence_length(sequence_length, 2)
        body = tf.cast(pieces[:, : sequence_length - 2], tf.int32)
        rows = body.nrows()
        start = tf.fill(tf.stack([rows, 1]), self.cls_id)
        end = tf.fill(tf.stack([rows, 1]), self.sep_id)
        return self._model_inputs(tf.concat([start, body, end], axis=1), sequence_length)

    def encode_pairs(self, first, second, sequence_length: int) -> dict:
        """``<s> first </s></s> second </s>``; the longer side is trimmed first."""
        check_sequence_length(sequence_length, 4)
        a, b = trim_pair(self.tokenize(first), self.tokenize(second), sequence_length - 4)
        rows = a.nrows()
        start = tf.fill(tf.stack([rows, 1]), self.cls_id)
        end = tf.fill(tf.stack([rows, 1]), self.sep_id)
        ids = tf.cast(tf.concat([start, a, end, end, b, end], axis=1), tf.int32)
        inputs = self._model_inputs(ids, sequence_length)
        inputs["segment_ids"] = tf.zeros_like(inputs["token_ids"])
        return inputs

    def detokenize(self, ids) -> tf.Tensor:
        """Ids [B, T] or [B, (T)] -> [B] strings; <s>, <pad>, </s> and <mask> are dropped."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int32)
        keep = (
            tf.not_equal(ids, self.pad_id)
            & tf.not_equal(ids, self.cls_id)
            & tf.not_equal(ids, self.sep_id)
            & tf.not_equal(ids, self.mask_id)
        )
        kept = tf.ragged.boolean_mask(ids, keep)
        pieces = tf.ragged.map_flat_values(
            lambda v: tf.where(tf.equal(v, self.unk_id), 0, v - 1), kept
        )
        return self._sentencepiece.detokenize(pieces)
