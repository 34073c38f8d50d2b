"""The tokenizer base: both kinds offer it, and a model_dir's tokenizer file is loaded through it."""

import io

import pytest
import numpy as np
import sentencepiece
import tensorflow as tf

from tf_metaling import checkpoints
from tf_metaling.tokenizers import SentencePieceTokenizer, Tokenizer, WordPieceTokenizer

TEXTS = ["the cat sat on the mat", "le chat est sur le tapis", "paka ameketi juu ya mkeka"]


@pytest.fixture(scope="module")
def kinds():
    """A WordPiece and a SentencePiece tokenizer learned on the same few sentences."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS * 20), model_writer=model,
                                             vocab_size=25, minloglevel=2)
    return [WordPieceTokenizer.train({"xx": TEXTS}, vocab_size=60), SentencePieceTokenizer(model.getvalue())]


def test_the_base_is_abstract_and_both_kinds_offer_it(kinds):
    with pytest.raises(TypeError, match="abstract"):
        Tokenizer()
    for tokenizer in kinds:
        assert isinstance(tokenizer, Tokenizer)
        inputs = tokenizer.encode(tf.constant(["the cat", "le chat est sur le tapis " * 4]), sequence_length=16)
        assert set(inputs) == {"token_ids", "padding_mask"}
        ids = inputs["token_ids"].numpy()
        assert ids[:, 0].tolist() == [tokenizer.cls_id] * 2  # packed: start, pieces, end, padding
        assert ids[0, -1] == tokenizer.pad_id and ids[1, -1] == tokenizer.sep_id  # the long text is cut
        assert (inputs["padding_mask"].numpy() == (ids != tokenizer.pad_id)).all()
        pairs = tokenizer.encode_pairs(tf.constant(["the cat"]), tf.constant(["le chat"]), sequence_length=12)
        assert set(pairs) == {"token_ids", "padding_mask", "segment_ids"}
        assert len(tokenizer.vocab) == tokenizer.vocab_size > tokenizer.mask_id >= 0
        assert tokenizer.id_to_token(tokenizer.unk_id) in ("[UNK]", "<unk>")
        with pytest.raises(ValueError, match="sequence_length=1: expected an int >= 2"):
            tokenizer.encode(tf.constant(["the cat"]), sequence_length=1)


def test_a_model_dir_keeps_each_kind_under_its_file_name_and_loads_it_back(kinds, tmp_path):
    for tokenizer in kinds:
        model_dir = tmp_path / type(tokenizer).__name__
        saved = tokenizer.save(str(model_dir / tokenizer.file_name))
        assert checkpoints.vocab_path(str(model_dir)) == saved
        loaded = checkpoints.load_tokenizer(saved)
        assert type(loaded) is type(tokenizer) and loaded.vocab == tokenizer.vocab
        texts = tf.constant(TEXTS)
        assert loaded.tokenize(texts).to_list() == tokenizer.tokenize(texts).to_list()
    assert [kind.file_name for kind in checkpoints.TOKENIZER_KINDS] == ["vocab.txt", "sentencepiece.model"]
    # Other names: a SentencePiece model by its suffix; any other file is a WordPiece vocabulary.
    wordpiece, sentencepiece_tokenizer = kinds
    assert type(checkpoints.load_tokenizer(sentencepiece_tokenizer.save(str(tmp_path / "xlmr.spm")))) \
        is SentencePieceTokenizer
    assert type(checkpoints.load_tokenizer(wordpiece.save(str(tmp_path / "my_vocab")))) is WordPieceTokenizer
    assert checkpoints.vocab_path(str(tmp_path / "empty")) is None


def test_a_sentencepiece_tokenizer_survives_setting_the_random_seed():
    """`keras.utils.set_random_seed` clears TensorFlow's eager kernel cache, which owned tensorflow-text's model."""
    import keras
    import tensorflow as tf

    from tests.models import pretrained_fixtures as fixtures
    from tf_metaling.tokenizers import SentencePieceTokenizer

    tokenizer = SentencePieceTokenizer(fixtures.sentencepiece_proto())
    traced = tf.function(lambda texts: tokenizer.encode(texts, 12)["token_ids"])
    texts = tf.constant(fixtures.SHORT_TEXTS)
    before, before_traced = tokenizer.encode(texts, 12)["token_ids"].numpy(), traced(texts).numpy()
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(tokenizer.encode(texts, 12)["token_ids"].numpy(), before)
    np.testing.assert_array_equal(traced(texts).numpy(), before_traced)
    # A second tokenizer of the same model shares the resource; deleting it leaves the first working.
    other = SentencePieceTokenizer(fixtures.sentencepiece_proto())
    np.testing.assert_array_equal(other.encode(texts, 12)["token_ids"].numpy(), before)
    del other
    np.testing.assert_array_equal(tokenizer.encode(texts, 12)["token_ids"].numpy(), before)
