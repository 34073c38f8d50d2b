"""Synthetic languages: shifted ids, reversed word order, in the MLM pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.data.pipelines import MlmPipelineConfig, language_batches
from tf_metaling.data.synthetic import (
    SyntheticLanguages,
    reverse_word_order,
    reverse_words,
    shift_token_ids,
    toy_sentences,
)
from tf_metaling.languages import LanguageVocabulary
from tf_metaling.tokenizers import NUM_SPECIAL_TOKENS, WordPieceTokenizer


def test_shift_keeps_special_tokens():
    ids = tf.constant([[2, 5, 9, 3, 0]])
    assert shift_token_ids(ids, 100).numpy().tolist() == [[2, 105, 109, 3, 0]]
    ragged = tf.ragged.constant([[1, 7], [4]])
    assert shift_token_ids(ragged, 10).to_list() == [[1, 17], [4]]


def test_reverse_word_order_keeps_pieces_inside_words():
    pieces = tf.ragged.constant([[[5, 6], [7], [8, 9, 10]], [[11]], []], ragged_rank=2)
    assert reverse_word_order(pieces).to_list() == [[[8, 9, 10], [7], [5, 6]], [[11]], []]
    assert reverse_words("the cat sat") == "sat cat the"


def test_toy_sentences_are_deterministic_with_agreement():
    first = toy_sentences(50, seed=3)
    assert first == toy_sentences(50, seed=3) and first != toy_sentences(50, seed=4)
    for sentence in first:
        words = sentence.split()
        verb = next(
            w
            for w in words
            if w
            in {
                "sees",
                "see",
                "likes",
                "like",
                "finds",
                "find",
                "follows",
                "follow",
                "hears",
                "hear",
                "builds",
                "build",
            }
        )
        subject_plural = words[0] == "some" or words[words.index(verb) - 1] in {
            "cats",
            "dogs",
            "birds",
            "children",
            "farmers",
            "teachers",
            "rivers",
            "houses",
            "trees",
            "songs",
        }
        assert verb.endswith("s") != subject_plural or verb in ("finds", "find")  # fmt: skip


def test_synthetic_languages_in_the_pipeline():
    sentences = toy_sentences(400, seed=5)
    tokenizer = WordPieceTokenizer.train({"en": sentences}, vocab_size=80)
    synthetic = SyntheticLanguages.standard(tokenizer.vocab_size, "en")
    span = tokenizer.vocab_size - NUM_SPECIAL_TOKENS
    assert synthetic.vocab_size == NUM_SPECIAL_TOKENS + 3 * span
    languages = LanguageVocabulary(synthetic.codes)
    same = synthetic.sources(sentences[:40], disjoint=False)
    config = MlmPipelineConfig(batch_size=40, sequence_length=64, packing="sentence", mask_rate=0.01,
                               max_predictions=1)  # fmt: skip
    batches = language_batches(
        same, tokenizer, languages, config,
        language_transforms=synthetic.transforms(), vocab_size=synthetic.vocab_size,
    )  # fmt: skip

    def unmasked(code):
        batch = batches[code][0]
        ids = batch["token_ids"].numpy().copy()
        rows = np.arange(len(ids))[:, None]
        ids[rows, batch["mask_positions"].numpy()] = np.where(
            batch["mask_weights"].numpy() > 0,
            batch["mask_ids"].numpy(),
            ids[rows, batch["mask_positions"].numpy()],
        )
        return ids

    base, shifted = unmasked("en"), unmasked("en-shift")
    assert (base[:, -1] == 0).all()  # nothing truncated
    regular = base >= NUM_SPECIAL_TOKENS
    assert np.array_equal(shifted[regular], base[regular] + span)
    assert np.array_equal(shifted[~regular], base[~regular])
    assert synthetic.to_base_ids(shifted).numpy().tolist() == base.tolist()
    both = unmasked("en-shift-rev")
    assert both[regular].min() >= NUM_SPECIAL_TOKENS + 2 * span
    reversed_text = tokenizer.detokenize(synthetic.to_base_ids(unmasked("en-rev"))).numpy()
    original = tokenizer.detokenize(base).numpy()
    for rev, orig in zip(reversed_text, original):
        assert rev.decode().split() == orig.decode().split()[::-1]
    split = synthetic.sources(sentences[:8])
    assert sum(len(v) for v in split.values()) == 8 and not set(split["en"]) & set(split["en-rev"])
    with pytest.raises(KeyError):
        synthetic.transform("fr")


def test_transform_by_language_applies_each_examples_own_transform():
    from tf_metaling.data.corpora.synthetic_corpus import SyntheticCorpus

    synthetic = SyntheticCorpus.definitions(["en", "xx", "yy"], base_vocab_size=25)  # span 20
    words = tf.ragged.constant([[[5, 6], [7], [2, 9]]] * 3, ragged_rank=2)
    mixed = synthetic.transform_by_language(words, tf.constant([2, 0, 1]), ["en", "xx", "yy"])
    one_by_one = [synthetic.transform(code)(words[:1]).to_list()[0] for code in ("yy", "en", "xx")]
    assert mixed.to_list() == one_by_one
    assert one_by_one[2] == [[2, 29], [27], [25, 26]]  # xx: reversed, +20; special id 2 kept
    assert reverse_word_order(words, rows=[False, True, False]).to_list()[::2] == [words[0].to_list()] * 2
    assert synthetic.id_range("yy") == (45, 65)


def test_synthetic_languages_round_trip_through_a_model_dir(tmp_path):
    synthetic = SyntheticLanguages.standard(100, "en")
    synthetic.save(str(tmp_path))
    loaded = SyntheticLanguages.load(str(tmp_path))
    assert loaded.to_dict() == synthetic.to_dict() and loaded.vocab_size == synthetic.vocab_size
    assert SyntheticLanguages.load(str(tmp_path / "elsewhere")) is None
    definitions = '{"base_vocab_size": 100, "languages": [{"code": "en"}]}'
    (tmp_path / "synthetic_languages.json").write_text(definitions)
    with pytest.raises(ValueError, match="synthetic_languages.json.*KeyError"):
        SyntheticLanguages.load(str(tmp_path))
