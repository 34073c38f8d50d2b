"""A tiny text model with every head, its tokenizer, and exports of it, for the serving tests."""

from __future__ import annotations

import numpy as np

from tests.helpers import LANGUAGES, tiny_encoder
from tf_metaling.models import MultilingualModel
from tf_metaling.tokenizers import WordPieceTokenizer

TEXTS = {
    "en": ["the cat sat on the mat", "a dog runs in the park", "the sun is bright today"],
    "fr": ["le chat est sur le tapis", "un chien court dans le parc", "le soleil brille"],
    "sw": ["paka ameketi juu ya mkeka", "mbwa anakimbia katika bustani", "jua linang'aa leo"],
}
TAG_NAMES = ["O", "B-X", "I-X"]
CLASS_NAMES = ["negative", "neutral", "positive"]


def tiny_tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer.train(TEXTS, vocab_size=120)


def tiny_text_model(tokenizer: WordPieceTokenizer, seed: int = 0, languages=LANGUAGES, **overrides) -> MultilingualModel:
    encoder = tiny_encoder(
        "adapter",
        languages=languages,
        seed=seed,
        vocabulary_size=tokenizer.vocab_size,
        max_sequence_length=16,
        **overrides,
    )
    return MultilingualModel(encoder, token_class_names=TAG_NAMES, sentence_class_names=CLASS_NAMES, head_dropout=0.0)


def id_batch(languages=("en", "sw", "fr"), length=7, vocabulary_size=40, seed=3):
    rng = np.random.RandomState(seed)
    token_ids = rng.randint(5, vocabulary_size, size=(len(languages), length)).astype(np.int32)
    padding_mask = np.ones_like(token_ids)
    token_ids[0, -2:] = 0
    padding_mask[0, -2:] = 0
    return {
        "token_ids": token_ids,
        "padding_mask": padding_mask,
        "language": np.asarray([code.encode() for code in languages], dtype=object),
    }
