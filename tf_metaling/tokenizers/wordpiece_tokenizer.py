"""The shared multilingual WordPiece tokenizer, in the TensorFlow graph.

One WordPiece vocabulary serves every language. Tokenisation runs in the graph
with tensorflow-text's `FastWordpieceTokenizer` after the `Pretokenizer`
(normalisation, lower-casing, punctuation/CJK splitting), so the same object
feeds `tf.data` pipelines, runs inside `tf.function`, and ships inside exported
SavedModels: the WordPiece model is a constant of the graph and the vocabulary
file is tracked as a SavedModel asset when the tokenizer was loaded from one.

A vocabulary the project learns has its special tokens first, with fixed ids
``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4``. A pretrained checkpoint's
vocabulary (`tf_metaling.models.pretrained`) keeps its own ids: pass
`special_tokens`, and read the ids from the tokenizer (``pad_id``, ``unk_id``,
``cls_id``, ``sep_id``, ``mask_id``), as packing and serving do. With
``pretokenization="bert"`` words are split as keras-hub's BERT tokenizer splits
them (`BertPretokenizer`), so a converted BERT gets the ids it was trained on.

`WORDPIECE_OPS` lists the string/text ops the in-graph tokenizer uses
(`encode`, `encode_pairs`, `tokenize_pretokenized`, `detokenize`); the tests
check it against traced graphs. All are old enough for the tensorflow-text
2.12.1 that stock TF Serving builds in (its build even patches
fast_wordpiece_tokenizer.cc, tensorflow/serving PR 4057): FastWordpiece
predates FastBertTokenizer (2.9), NormalizeUTF8 dates from 2.0, the rest is
core TensorFlow. No TF Serving binary can be installed here, so this was not
run against one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence

import tensorflow as tf

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.errors import DataFormatError
from tf_metaling.language_sampling import DEFAULT_ALPHA, language_sampling_probabilities
from tf_metaling.languages import as_vocabulary
from tf_metaling.tokenizers import wordpiece_vocabulary as learner
from tf_metaling.tokenizers.bert_pretokenizer import BertPretokenizer
from tf_metaling.tokenizers.pretokenizer import Pretokenizer
from tf_metaling.tokenizers.tokenizer import Tokenizer, check_sequence_length, trim_pair

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = (
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)
NUM_SPECIAL_TOKENS = len(SPECIAL_TOKENS)
SUFFIX_INDICATOR = "##"

# Roles of the special tokens, and the project's own tokens for them.
SPECIAL_ROLES = ("pad", "unk", "cls", "sep", "mask")
DEFAULT_SPECIAL_TOKENS = dict(zip(SPECIAL_ROLES, SPECIAL_TOKENS))
PRETOKENIZATIONS = ("tf_metaling", "bert")

# Found by tracing encode / encode_pairs / tokenize_pretokenized / detokenize
# (tests/tokenizers/test_wordpiece_tokenizer.py::test_tokenizer_ops_match_traced_graph).
# FastWordpiece*, NormalizeUTF8 and TFText>* come from tensorflow-text (the
# detokenizer op is registered under the "TFText>" namespace); the others are
# core TensorFlow.
WORDPIECE_OPS = (
    "FastWordpieceTokenizeWithOffsets",
    "NormalizeUTF8",
    "StaticRegexReplace",
    "StringLower",
    "StringSplitV2",
    "TFText>FastWordpieceDetokenize",
)

_CONFIG_SUFFIX = ".config.json"


class WordPieceTokenizer(Tokenizer):
    """WordPiece tokenizer with a shared multilingual vocabulary.

    Args:
        vocab: the tokens in id order; must start with `SPECIAL_TOKENS`.
        lower_case: lower-case text before splitting (Unicode-aware).
        normalization_form: Unicode normalisation before splitting
            (``"NFC"`` default, or None / NFKC / NFD / NFKD).
        max_bytes_per_word: longer words become ``[UNK]``.
        vocab_file: the file the vocabulary came from; tracked as a SavedModel
            asset so exports carry it.
        special_tokens: ``{role: token}`` for the roles ``pad, unk, cls, sep,
            mask`` when the vocabulary is not the project's (a pretrained
            checkpoint's); default: the project's tokens, which must come first.
        pretokenization: ``"tf_metaling"`` (`Pretokenizer`) or ``"bert"``
            (keras-hub's BERT splitting, `BertPretokenizer`; `lower_case` is
            then Unicode case folding and `normalization_form` must be None).
        strip_accents: drop combining marks (``"bert"`` pretokenisation only).

    Example:
    >>> tokenizer = WordPieceTokenizer.train({"en": ["a cat sat"], "fr": ["un chat"]}, 40)
    >>> batch = tokenizer.encode(tf.constant(["a cat"]), sequence_length=6)
    >>> batch["padding_mask"].numpy().tolist()
    [[1, 1, 1, 1, 0, 0]]
    """

    file_name = "vocab.txt"

    def __init__(
        self,
        vocab: Sequence[str],
        lower_case: bool = True,
        normalization_form: str | None = "NFC",
        max_bytes_per_word: int = 100,
        vocab_file: str | None = None,
        name: str = "tokenizer",
        special_tokens: Mapping[str, str] | None = None,
        pretokenization: str = "tf_metaling",
        strip_accents: bool = False,
    ):
        super().__init__(name=name)
        # Loaded when a tokenizer is built, not when the module is imported: tensorflow-text
        # registers custom ops, and modules that only read the special ids do not need them.
        import tensorflow_text as text

        vocab = list(vocab)
        self.special_tokens = dict(special_tokens) if special_tokens else None
        _check_vocab(vocab, source=vocab_file, special_tokens=self.special_tokens)
        self._vocab = tuple(vocab)
        self.lower_case = bool(lower_case)
        self.normalization_form = normalization_form
        self.max_bytes_per_word = int(max_bytes_per_word)
        if pretokenization not in PRETOKENIZATIONS:
            raise ValueError(f"pretokenization={pretokenization!r}: expected one of {PRETOKENIZATIONS}.")
        self.pretokenization = pretokenization
        self.strip_accents = bool(strip_accents)
        if pretokenization == "bert":
            if normalization_form is not None:
                raise ValueError("pretokenization='bert' normalises as BERT does: set normalization_form=None.")
            self.pretokenizer = BertPretokenizer(lower_case, self.strip_accents)
        elif self.strip_accents:
            raise ValueError("strip_accents is part of pretokenization='bert'.")
        else:
            self.pretokenizer = Pretokenizer(lower_case, normalization_form)
        self._token_index = {token: i for i, token in enumerate(vocab)}
        roles = self.special_tokens or DEFAULT_SPECIAL_TOKENS
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self._token_index[roles[role]] for role in SPECIAL_ROLES
        )
        self._wordpiece = text.FastWordpieceTokenizer(
            vocab=vocab,
            suffix_indicator=SUFFIX_INDICATOR,
            max_bytes_per_word=self.max_bytes_per_word,
            token_out_type=tf.int32,
            unknown_token=vocab[self.unk_id],
            no_pretokenization=True,
            support_detokenization=True,
        )
        self._vocab_tensor = tf.constant(vocab, dtype=tf.string)
        self.vocab_asset = tf.saved_model.Asset(vocab_file) if vocab_file else None
        # Kept as JSON text: tf.Module would wrap a dict into tracked containers.
        self._training_summary_json = "null"

    # ------------------------------------------------------------ construction
    @classmethod
    def train(
        cls,
        text_iterables_by_language: Mapping[str, Iterable[str]],
        vocab_size: int = 8000,
        alpha: float = DEFAULT_ALPHA,
        seed: int = 0,
        max_sentences_per_language: int | None = None,
        character_coverage: float = 0.9995,
        lower_case: bool = True,
        normalization_form: str | None = "NFC",
        languages=None,
    ) -> WordPieceTokenizer:
        """Learns a shared vocabulary with language-balanced counts.

        Args:
            text_iterables_by_language: ``{code: iterable of sentences}``.
            vocab_size: size of the vocabulary, special tokens included.
            alpha: language balancing exponent: language l contributes a share
                q_l ∝ n_l^alpha of the word counts (n_l = its number of words).
            seed: seeds the sentence sample when `max_sentences_per_language`
                is set (learning itself is deterministic).
            max_sentences_per_language: count at most this many sentences per
                language (a uniform sample), to bound training time.
            character_coverage: characters covering this share of the balanced
                text are all in the vocabulary.
            languages: optional `LanguageVocabulary`; every code must be in it.
        """
        if not text_iterables_by_language:
            raise ValueError("WordPieceTokenizer.train needs text for at least one language.")
        if languages is not None:
            as_vocabulary(languages).check(
                list(text_iterables_by_language), where="Tokenizer.train text"
            )
        pretokenizer = Pretokenizer(lower_case, normalization_form)
        counts_by_language, summary = {}, {}
        for language, texts in text_iterables_by_language.items():
            counts, sentences, words = learner.count_words(
                texts, pretokenizer, max_sentences_per_language, seed
            )
            counts_by_language[language] = counts
            summary[language] = {"sentences": sentences, "words": words}
        balanced = learner.balanced_word_counts(counts_by_language, alpha)
        vocab = learner.learn_wordpiece_vocabulary(
            balanced, vocab_size, list(SPECIAL_TOKENS), character_coverage, SUFFIX_INDICATOR
        )
        tokenizer = cls(vocab, lower_case=lower_case, normalization_form=normalization_form)
        shares = language_sampling_probabilities(
            {lang: s["words"] for lang, s in summary.items()}, alpha
        )
        for lang, stats in summary.items():
            stats["share"] = shares[lang]
        tokenizer._training_summary_json = json.dumps(
            {"alpha": alpha, "requested_vocab_size": vocab_size, "languages": summary}
        )
        return tokenizer

    @classmethod
    def load(cls, path, **options) -> WordPieceTokenizer:
        """Loads a vocabulary written by `save` (one token per line).

        Options saved next to the file (``<path>.config.json``) are used unless
        given explicitly in `options`.
        """
        path = os.fspath(path)
        config = {}
        config_path = path + _CONFIG_SUFFIX
        if os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        config.update(options)
        vocab = read_vocab_file(path, special_tokens=config.get("special_tokens"))
        return cls(vocab, vocab_file=path, **config)

    @classmethod
    def from_keras_hub(cls, tokenizer, vocab_file=None) -> WordPieceTokenizer:
        """The same WordPiece tokenizer as a keras-hub `BertTokenizer` (vocabulary, splitting, specials)."""
        vocab = list(tokenizer.get_vocabulary())
        if tokenizer.special_tokens_in_strings or not tokenizer.split:
            raise ValueError(
                f"{vocab_file or tokenizer.name}: keras-hub tokenizer options special_tokens_in_strings="
                f"{tokenizer.special_tokens_in_strings}, split={tokenizer.split} are not supported."
            )
        special = {
            "pad": tokenizer.pad_token,
            "unk": tokenizer.oov_token,
            "cls": tokenizer.cls_token,
            "sep": tokenizer.sep_token,
            "mask": tokenizer.mask_token,
        }
        return cls(
            vocab,
            lower_case=tokenizer.lowercase,
            normalization_form=None,
            vocab_file=vocab_file,
            special_tokens=special,
            pretokenization="bert",
            strip_accents=tokenizer.strip_accents,
        )

    def save(self, path) -> str:
        """Writes the vocabulary file (and its options beside it); returns the path."""
        path = os.fspath(path)
        atomic_write_text(path, "".join(token + "\n" for token in self._vocab))
        atomic_write_text(path + _CONFIG_SUFFIX, json.dumps(self.get_config(), indent=2) + "\n")
        return path

    def get_config(self) -> dict:
        config = {
            "lower_case": self.lower_case,
            "normalization_form": self.normalization_form,
            "max_bytes_per_word": self.max_bytes_per_word,
        }
        if self.special_tokens or self.pretokenization != "tf_metaling":
            config.update(
                special_tokens=self.special_tokens,
                pretokenization=self.pretokenization,
                strip_accents=self.strip_accents,
            )
        return config

    @property
    def training_summary(self) -> dict | None:
        """Per-language sentences, words and balanced share from `train` (else None)."""
        return json.loads(self._training_summary_json)

    # ------------------------------------------------------------ vocabulary
    def token_to_id(self, token: str) -> int:
        if token not in self._token_index:
            raise KeyError(f"Token {token!r} is not in the vocabulary.")
        return self._token_index[token]

    # ------------------------------------------------------------ in-graph ops
    def tokenize_words(self, strings) -> tf.RaggedTensor:
        """[B] strings -> int32 [B, (words), (pieces)]."""
        return self._wordpiece.tokenize(self.pretokenizer.split(strings))

    def tokenize(self, strings) -> tf.RaggedTensor:
        """[B] strings -> int32 [B, (pieces)] (a scalar string gives [pieces])."""
        pieces = self.tokenize_words(strings)
        return pieces.merge_dims(-2, -1)

    def tokenize_pretokenized(self, words) -> tf.RaggedTensor:
        """Already split words [B, (words)] -> int32 [B, (words), (pieces)].

        Every word gets at least one piece (``[UNK]`` when it normalises to
        nothing), so word-level labels can always be attached.
        """
        words = _as_tensor_or_ragged(words, tf.string)
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(words)
        sub_words = self.pretokenizer.split(words.flat_values)  # [N, (sub)]
        pieces = self._wordpiece.tokenize(sub_words).merge_dims(1, 2)  # [N, (pieces)]
        return self._at_least_one_piece(words, pieces)

    def pack(self, pieces: tf.RaggedTensor, sequence_length: int) -> dict:
        """[B, (pieces)] -> ``[CLS] pieces [SEP]`` truncated and padded to T."""
        check_sequence_length(sequence_length, 2)
        body = pieces[:, : sequence_length - 2]
        rows = body.nrows()
        cls = tf.fill(tf.stack([rows, 1]), tf.constant(self.cls_id, body.dtype))
        sep = tf.fill(tf.stack([rows, 1]), tf.constant(self.sep_id, body.dtype))
        ids = tf.concat([cls, body, sep], axis=1)
        return self._model_inputs(ids, sequence_length)

    def encode_pairs(self, first, second, sequence_length: int) -> dict:
        """``[CLS] first [SEP] second [SEP]`` with ``segment_ids`` (0 / 1).

        When too long, the longer side is trimmed first (each side keeps at
        least half of the budget if it needs it).
        """
        check_sequence_length(sequence_length, 3)
        a, b = trim_pair(self.tokenize(first), self.tokenize(second), sequence_length - 3)
        rows = a.nrows()
        cls = tf.fill(tf.stack([rows, 1]), self.cls_id)
        sep = tf.fill(tf.stack([rows, 1]), self.sep_id)
        ids = tf.concat([cls, a, sep, b, sep], axis=1)
        segments = tf.concat(
            [
                tf.zeros_like(cls),
                tf.zeros_like(a),
                tf.zeros_like(sep),
                tf.ones_like(b),
                tf.ones_like(sep),
            ],
            axis=1,
        )
        inputs = self._model_inputs(ids, sequence_length)
        inputs["segment_ids"] = segments.to_tensor(0, shape=[None, sequence_length])
        return inputs

    def detokenize(self, ids) -> tf.Tensor:
        """Ids [B, T] or [B, (T)] -> [B] strings; [PAD], [CLS], [SEP] are dropped."""
        ids = tf.cast(_as_tensor_or_ragged(ids), tf.int32)
        keep = tf.not_equal(ids, self.pad_id) & tf.not_equal(ids, self.cls_id) & tf.not_equal(ids, self.sep_id)
        return self._wordpiece.detokenize(tf.ragged.boolean_mask(ids, keep))


def read_vocab_file(path, special_tokens=None) -> list[str]:
    """Reads a vocabulary (one token per line), raising DataFormatError on bad lines."""
    path = os.fspath(path)
    vocab = []
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                token = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataFormatError(
                    f"invalid UTF-8 at byte {error.start} of the line",
                    path=path,
                    line=line_number,
                    field="token",
                    expected="UTF-8 text",
                ) from None
            vocab.append(token)
    if not vocab:
        raise DataFormatError("empty vocabulary file", path=path, expected="one token per line")
    _check_vocab(vocab, source=path, special_tokens=special_tokens)
    return vocab


def _check_vocab(vocab: list[str], source=None, special_tokens=None) -> None:
    if special_tokens is not None:
        missing = [f"{role}={special_tokens.get(role)!r}" for role in SPECIAL_ROLES
                   if special_tokens.get(role) not in vocab]
        if missing:
            raise DataFormatError(
                f"special tokens {missing} are not in the vocabulary", path=source, field="token"
            )
    for i, expected in enumerate(() if special_tokens is not None else SPECIAL_TOKENS):
        found = vocab[i] if i < len(vocab) else None
        if found != expected:
            raise DataFormatError(
                "special tokens must come first, in their fixed order",
                path=source,
                line=i + 1,
                field="token",
                expected=f"{expected!r} (id {i})",
                found=found,
            )
    first_line = {}
    for i, token in enumerate(vocab):
        if not isinstance(token, str) or not token or token != token.strip() or " " in token:
            raise DataFormatError(
                "invalid token",
                path=source,
                line=i + 1,
                field="token",
                expected="a non-empty string without spaces",
                found=token,
            )
        if token in first_line:
            raise DataFormatError(
                f"duplicate token (first seen on line {first_line[token]})",
                path=source,
                line=i + 1,
                field="token",
                found=token,
            )
        first_line[token] = i + 1


def _as_tensor_or_ragged(value, dtype=None):
    if isinstance(value, tf.RaggedTensor):
        return value
    return tf.convert_to_tensor(value, dtype=dtype)
