"""Synthetic languages derived from one corpus, for controlled experiments.

Following K et al. (2020, "Cross-lingual ability of multilingual BERT") and
Dufter & Schuetze (2020, "Identifying necessary elements for BERT's
multilinguality"), a "language" can be made from another by

- **shift**: moving every non-special token id into a disjoint range
  (``id + k * (V - NUM_SPECIAL_TOKENS)``), so the two share no subword but
  have identical structure;
- **reverse**: reversing the word order of every sentence;
- both;
- **share**: a fraction of the base vocabulary's regular ids is not shifted,
  so the two languages share exactly that fraction of their subword ids (the
  shared ids are the first ``round(share * (V - NUM_SPECIAL_TOKENS))`` of a
  fixed permutation, the same for every language: shares nest).

Special tokens keep their ids in every language. The transforms act on
tokenised word pieces ``[B, (words), (pieces)]`` in the graph and plug into
`pipelines.mlm_dataset(language_transforms=...)`; the model's vocabulary must
be `SyntheticLanguages.vocab_size`. `transform_by_language` applies each
example's own transform to a mixed-language batch (exported text signatures),
and ``synthetic_languages.json`` in a model_dir records the definitions
(`save` / `load`) so an export can repeat them exactly. `toy_sentences` generates a small
deterministic corpus with real agreement structure, so fast tests and the
quick demo need no download at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.tokenizers import NUM_SPECIAL_TOKENS

SYNTHETIC_KINDS = ("original", "shift", "reverse", "shift+reverse")
# Written into a model_dir trained on synthetic languages (see `SyntheticLanguages.save`).
SYNTHETIC_LANGUAGES_FILE = "synthetic_languages.json"


# The permutation that picks the shared ids (fixed: a model_dir's definitions stay valid).
SHARE_PERMUTATION_SEED = 0


def shift_token_ids(ids, offset: int, kept=None):
    """Adds `offset` to every non-special id (dense or ragged int tensors).

    `kept` (bool ``[V]``, optional): ids where it is True keep their value (shared ids).
    """
    if isinstance(ids, tf.RaggedTensor):
        return ids.with_flat_values(shift_token_ids(ids.flat_values, offset, kept))
    ids = tf.convert_to_tensor(ids)
    move = ids >= NUM_SPECIAL_TOKENS
    if kept is not None:
        move = tf.logical_and(move, tf.logical_not(tf.gather(tf.constant(kept, tf.bool), ids)))
    return tf.where(move, ids + tf.cast(offset, ids.dtype), ids)


def reverse_word_order(word_pieces: tf.RaggedTensor, rows=None) -> tf.RaggedTensor:
    """Reverses the words of each row of ``[B, (words), (pieces)]``; pieces keep
    their order inside a word. With `rows` (bool ``[B]``), only the rows where
    it is True are reversed."""
    words = word_pieces  # [B, (W), (P)]
    starts = words.row_starts()
    lengths = words.row_lengths()
    row = words.value_rowids()
    word_index = tf.range(tf.shape(row, out_type=row.dtype)[0], dtype=row.dtype)
    position = word_index - tf.gather(starts, row)
    source = tf.gather(starts, row) + tf.gather(lengths, row) - 1 - position
    if rows is not None:
        source = tf.where(tf.gather(tf.convert_to_tensor(rows, tf.bool), row), source, word_index)
    return tf.RaggedTensor.from_row_splits(
        tf.gather(words.values, source), words.row_splits, validate=False
    )


def reverse_words(text: str) -> str:
    """Text-level word reversal (whitespace words), for inspection and tests."""
    return " ".join(reversed(text.split()))


@dataclasses.dataclass(frozen=True)
class SyntheticLanguage:
    """A derived language: `shift` selects the id range (0 = original ids); `share`
    is the fraction of the base's regular ids it keeps unshifted (shares with the base)."""

    code: str
    shift: int = 0
    reverse: bool = False
    share: float = 0.0

    def __post_init__(self):
        if self.shift < 0:
            raise ValueError(f"{self.code}: shift={self.shift}, expected >= 0.")
        if not 0.0 <= float(self.share) <= 1.0:
            raise ValueError(f"{self.code}: share={self.share}, expected a fraction in [0, 1].")


class SyntheticLanguages:
    """A set of synthetic languages over one base tokenizer vocabulary.

    Args:
        base_vocab_size: vocabulary size V of the base tokenizer.
        languages: the `SyntheticLanguage`s.

    Example:
    >>> langs = SyntheticLanguages.standard(100, "en")
    >>> [l.code for l in langs.languages], langs.vocab_size
    (['en', 'en-shift', 'en-rev', 'en-shift-rev'], 195)
    """

    def __init__(self, base_vocab_size: int, languages: Sequence[SyntheticLanguage]):
        if base_vocab_size <= NUM_SPECIAL_TOKENS:
            raise ValueError(f"base_vocab_size={base_vocab_size} leaves no regular token.")
        codes = [lang.code for lang in languages]
        if len(set(codes)) != len(codes) or not codes:
            raise ValueError(f"Synthetic language codes must be unique and non-empty: {codes}.")
        self.base_vocab_size = int(base_vocab_size)
        self.languages = tuple(languages)
        self.span = self.base_vocab_size - NUM_SPECIAL_TOKENS

    @classmethod
    def standard(cls, base_vocab_size: int, base_code: str = "en") -> SyntheticLanguages:
        """The original language plus shifted, reversed, shifted+reversed copies."""
        return cls(
            base_vocab_size,
            [
                SyntheticLanguage(base_code),
                SyntheticLanguage(f"{base_code}-shift", shift=1),
                SyntheticLanguage(f"{base_code}-rev", reverse=True),
                SyntheticLanguage(f"{base_code}-shift-rev", shift=2, reverse=True),
            ],
        )

    @property
    def codes(self) -> list[str]:
        return [lang.code for lang in self.languages]

    @property
    def vocab_size(self) -> int:
        """Ids needed by a model that reads all the languages."""
        return NUM_SPECIAL_TOKENS + (max(lang.shift for lang in self.languages) + 1) * self.span

    def language(self, code: str) -> SyntheticLanguage:
        language = {lang.code: lang for lang in self.languages}.get(code)
        if language is None:
            raise KeyError(f"Unknown synthetic language {code!r}; have {self.codes}.")
        return language

    def kept_ids(self, code: str):
        """bool ``[V]``: the base ids that language `code` leaves as they are (specials and shared ids)."""
        language = self.language(code)
        kept = np.zeros(self.base_vocab_size, bool)
        kept[:NUM_SPECIAL_TOKENS] = True
        if language.shift == 0:
            kept[:] = True
        else:
            shared = int(round(language.share * self.span))
            order = np.random.RandomState(SHARE_PERMUTATION_SEED).permutation(self.span)
            kept[NUM_SPECIAL_TOKENS + order[:shared]] = True
        return kept

    def shared_fraction(self, code: str) -> float:
        """Fraction of the base's regular ids that `code` uses unchanged (exact, by construction)."""
        return float(self.kept_ids(code)[NUM_SPECIAL_TOKENS:].mean())

    def transform(self, code: str):
        language = self.language(code)
        offset = language.shift * self.span
        kept = self.kept_ids(code) if language.share else None

        def apply(word_pieces: tf.RaggedTensor) -> tf.RaggedTensor:
            if language.reverse:
                word_pieces = reverse_word_order(word_pieces)
            if offset:
                word_pieces = shift_token_ids(word_pieces, offset, kept)
            return word_pieces

        return apply

    def transforms(self) -> dict:
        """``{code: transform}`` for `pipelines.mlm_dataset(language_transforms=...)`."""
        return {code: self.transform(code) for code in self.codes}

    def transform_by_language(self, word_pieces: tf.RaggedTensor, language_ids, codes) -> tf.RaggedTensor:
        """Each example's own transform, in the graph, for a batch that mixes languages.

        Args:
            word_pieces: int ``[B, (words), (pieces)]`` base-vocabulary ids.
            language_ids: int ``[B]``, indices into `codes`.
            codes: the language codes in index order (e.g. a model's), each
                one of `codes` of this set.
        """
        table = [self.language(code) for code in codes]
        offsets = tf.constant([lang.shift * self.span for lang in table], word_pieces.dtype)
        reverse = tf.constant([lang.reverse for lang in table], tf.bool)
        kept = tf.constant(np.stack([self.kept_ids(code) for code in codes]), tf.bool)  # [L, V]
        language_ids = tf.convert_to_tensor(language_ids)
        word_pieces = reverse_word_order(word_pieces, rows=tf.gather(reverse, language_ids))
        example_of_piece = tf.gather(word_pieces.value_rowids(), word_pieces.values.value_rowids())
        language_of_piece = tf.gather(tf.cast(language_ids, word_pieces.dtype), example_of_piece)
        offset = tf.gather(offsets, language_of_piece)
        ids = word_pieces.flat_values
        stays = tf.gather_nd(kept, tf.stack([language_of_piece, ids], axis=-1))
        return word_pieces.with_flat_values(tf.where(stays, ids, ids + offset))

    def id_range(self, code: str) -> tuple[int, int]:
        """``[low, high)``: the regular (non-special) ids of language `code`."""
        low = NUM_SPECIAL_TOKENS + self.language(code).shift * self.span
        return low, low + self.span

    def to_dict(self) -> dict:
        return {
            "base_vocab_size": self.base_vocab_size,
            "languages": [dataclasses.asdict(lang) for lang in self.languages],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "synthetic languages") -> SyntheticLanguages:
        try:
            languages = [SyntheticLanguage(str(d["code"]), int(d["shift"]), bool(d["reverse"]),
                                           float(d.get("share", 0.0))) for d in data["languages"]]
            return cls(int(data["base_vocab_size"]), languages)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{source}: expected {{'base_vocab_size': int, 'languages': "
                f"[{{'code', 'shift', 'reverse', 'share'}}]}}; {type(error).__name__}: {error}"
            ) from error

    def save(self, model_dir: str) -> str:
        """Writes ``model_dir/synthetic_languages.json`` atomically; returns its path."""
        path = os.path.join(model_dir, SYNTHETIC_LANGUAGES_FILE)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str) -> SyntheticLanguages | None:
        """The definitions a model_dir records, or None when it has none."""
        path = os.path.join(model_dir, SYNTHETIC_LANGUAGES_FILE)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg}).") from error
        return cls.from_dict(data, source=path)

    def sources(self, sentences: Sequence[str], disjoint: bool = True) -> dict[str, list[str]]:
        """Base sentences for each language: disjoint interleaved shares (so no
        language sees another's exact sentences) or the same list for all."""
        sentences = list(sentences)
        if not disjoint:
            return {code: sentences for code in self.codes}
        n = len(self.languages)
        if len(sentences) < n:
            raise ValueError(f"Need at least {n} sentences to give each language a share.")
        return {code: sentences[i::n] for i, code in enumerate(self.codes)}

    def to_base_ids(self, ids):
        """Maps ids of any synthetic language back to base-vocabulary ids."""
        ids = tf.convert_to_tensor(ids)
        regular = ids >= NUM_SPECIAL_TOKENS
        base = (ids - NUM_SPECIAL_TOKENS) % self.span + NUM_SPECIAL_TOKENS
        return tf.where(regular, base, ids)


_NOUNS = (("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("child", "children"),
          ("farmer", "farmers"), ("teacher", "teachers"), ("river", "rivers"),
          ("house", "houses"), ("tree", "trees"), ("song", "songs"))  # fmt: skip
_VERBS = (("sees", "see"), ("likes", "like"), ("finds", "find"), ("follows", "follow"),
          ("hears", "hear"), ("builds", "build"))  # fmt: skip
_ADJECTIVES = ("small", "old", "green", "quiet", "happy", "tall", "dark")
_PREPOSITIONS = ("near", "behind", "under", "beside")


def toy_sentences(count: int, seed: int = 0) -> list[str]:
    """Deterministic toy-English sentences with subject-verb agreement.

    ``the old cats see a dog near the river .``
    """
    rng = random.Random(seed)

    def noun_phrase():
        plural = rng.random() < 0.4
        words = [rng.choice(("the", "some")) if plural else rng.choice(("the", "a", "this"))]
        if rng.random() < 0.5:
            words.append(rng.choice(_ADJECTIVES))
        words.append(rng.choice(_NOUNS)[1 if plural else 0])
        return words, plural

    sentences = []
    for _ in range(count):
        subject, plural = noun_phrase()
        obj, _ = noun_phrase()
        words = subject + [rng.choice(_VERBS)[1 if plural else 0]] + obj
        if rng.random() < 0.4:
            place, _ = noun_phrase()
            words += [rng.choice(_PREPOSITIONS)] + place
        sentences.append(" ".join(words + ["."]))
    return sentences


class SyntheticTokenizer:
    """The base tokenizer, with each example's synthetic-language transform applied by `encode`.

    For evaluation code that embeds text of a known language (retrieval, the
    classification probe): ``encode(texts, length, language_ids=...)`` gives the
    ids a model trained on the synthetic languages saw in pretraining.
    Everything else is the base tokenizer's.
    """

    needs_language = True

    def __init__(self, tokenizer, synthetic: SyntheticLanguages, codes: Sequence[str]):
        self.tokenizer = tokenizer
        self.synthetic = synthetic
        self.codes = tuple(codes)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def encode(self, strings, sequence_length: int, language_ids=None) -> dict:
        if language_ids is None:
            raise ValueError("SyntheticTokenizer.encode needs language_ids: each language transforms its ids.")
        pieces = self.tokenizer.tokenize_words(strings)
        language_ids = tf.broadcast_to(tf.cast(language_ids, tf.int64), tf.reshape(pieces.nrows(), [1]))
        pieces = self.synthetic.transform_by_language(pieces, language_ids, self.codes)
        return self.tokenizer.pack(pieces.merge_dims(-2, -1), sequence_length)
