"""The language vocabulary: mapping, in-graph lookup, unknown-language policy, serialization."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.languages import LanguageVocabulary, UnknownLanguageError, as_vocabulary


def test_codes_and_indices():
    vocab = LanguageVocabulary(["en", "fr", "sw"])
    assert vocab.indices(["sw", "en"]) == [2, 0]
    assert vocab.code(1) == "fr"
    assert len(vocab) == 3 and "fr" in vocab and "de" not in vocab
    assert vocab.codes_of([2, 0, 0]).tolist() == ["sw", "en", "en"]


def test_in_graph_lookup_any_shape():
    vocab = LanguageVocabulary(["en", "fr", "sw"])
    ids = vocab.lookup(tf.constant([["sw", "en"], ["fr", "fr"]]))
    assert ids.dtype == tf.int32
    assert ids.numpy().tolist() == [[2, 0], [1, 1]]
    assert int(vocab.lookup(tf.constant("fr"))) == 1


@pytest.mark.parametrize("in_function", [False, True])
def test_unknown_language_error_names_the_code(in_function):
    vocab = LanguageVocabulary(["en", "fr"])
    lookup = tf.function(vocab.lookup) if in_function else vocab.lookup
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown language code.*xx"):
        lookup(tf.constant(["en", "xx"]))
    with pytest.raises(UnknownLanguageError, match="'xx'"):
        vocab.index("xx")


def test_unknown_language_default_policy():
    vocab = LanguageVocabulary(["en", "fr"], unknown="default", default_language="en")
    assert vocab.lookup(tf.constant(["fr", "xx", "zz"])).numpy().tolist() == [1, 0, 0]
    assert vocab.index("xx") == 0


def test_check_names_place():
    vocab = LanguageVocabulary(["en", "fr"])
    with pytest.raises(UnknownLanguageError, match=r"\['de'\] in config field languages"):
        vocab.check(["en", "de"], where="config field languages")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"codes": []}, "at least one"),
        ({"codes": ["en", "en"]}, "Duplicate"),
        ({"codes": ["en", "f r"]}, "Invalid language code"),
        ({"codes": ["en"], "unknown": "ignore"}, "unknown="),
        ({"codes": ["en"], "unknown": "default"}, "needs default_language"),
        ({"codes": ["en"], "unknown": "default", "default_language": "fr"}, "not one of"),
    ],
)
def test_invalid_vocabularies(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LanguageVocabulary(**kwargs)


def test_serialization_round_trip_and_extend():
    vocab = LanguageVocabulary(["en", "fr"], unknown="default", default_language="fr")
    assert LanguageVocabulary.from_json(vocab.to_json()) == vocab
    assert as_vocabulary(vocab.get_config()) == vocab
    grown = vocab.extend(["sw"])
    assert grown.codes == ("en", "fr", "sw") and grown.index("fr") == 1
    assert as_vocabulary("en, sw").codes == ("en", "sw")
    np.testing.assert_array_equal(grown.lookup(tf.constant(["sw"])).numpy(), [2])
