"""WordPieceTokenizer: training with balanced languages, in-graph encoding, SavedModel, ops."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.data.synthetic import toy_sentences
from tf_metaling.errors import DataFormatError
from tf_metaling.tokenizers import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    WORDPIECE_OPS,
    WordPieceTokenizer,
)
from tf_metaling.tokenizers import wordpiece_tokenizer as tokenizer_module

RUSSIAN = [
    "кошка сидит на окне и смотрит на улицу",
    "собака бежит по дороге к дому",
    "дети читают книги в библиотеке",
    "старый учитель пишет письмо другу",
]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.train({"en": toy_sentences(300, seed=1), "ru": RUSSIAN * 10}, vocab_size=200)


def test_special_tokens_have_fixed_ids(tokenizer):
    assert (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID) == (0, 1, 2, 3, 4)
    assert tokenizer.vocab[:5] == SPECIAL_TOKENS
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tokenizer.id_to_token(4) == "[MASK]"


def test_vocabulary_size_and_wordpiece_form(tokenizer):
    assert tokenizer.vocab_size == 200
    assert len(set(tokenizer.vocab)) == 200
    # Every character of the training text exists as word start and as suffix.
    for ch in "кошаabc.":
        assert ch in tokenizer.vocab and "##" + ch in tokenizer.vocab


def _cyrillic_share(tok):
    learned = [t.removeprefix("##") for t in tok.vocab[5:] if len(t.removeprefix("##")) > 1]
    cyrillic = [t for t in learned if "\u0400" <= t[0] <= "\u04ff"]
    return len(cyrillic) / len(learned)


def test_language_balancing_gives_small_language_more_subwords():
    text = {"en": toy_sentences(2000, seed=2), "ru": RUSSIAN * 3}
    proportional = WordPieceTokenizer.train(text, vocab_size=260, alpha=1.0)
    uniform = WordPieceTokenizer.train(text, vocab_size=260, alpha=0.0)
    assert _cyrillic_share(uniform) > _cyrillic_share(proportional) + 0.1
    shares = uniform.training_summary["languages"]
    assert shares["en"]["share"] == pytest.approx(0.5)
    assert shares["ru"]["sentences"] == 12


def test_encode_adds_cls_sep_truncates_and_pads(tokenizer):
    pieces = tokenizer.tokenize(tf.constant(["the cat sees a dog .", "a bird"]))
    lengths = pieces.row_lengths().numpy()
    out = tokenizer.encode(tf.constant(["the cat sees a dog .", "a bird"]), sequence_length=6)
    ids = out["token_ids"].numpy()
    mask = out["padding_mask"].numpy()
    assert ids.dtype == np.int32 and ids.shape == (2, 6)
    assert ids[0, 0] == CLS_ID and ids[0, 5] == SEP_ID  # truncated to 4 pieces
    assert ids[0, 1:5].tolist() == pieces[0, :4].numpy().tolist()
    n = lengths[1] + 2
    assert ids[1, n - 1] == SEP_ID and (ids[1, n:] == PAD_ID).all()
    assert mask.tolist()[1] == [1] * n + [0] * (6 - n)
    assert mask[0].sum() == 6


def test_detokenize_inverts_tokenization_of_known_text(tokenizer):
    text = ["The old cats see a dog near the river.", "Кошка сидит на окне"]
    ids = tokenizer.encode(tf.constant(text), sequence_length=32)["token_ids"]
    assert tokenizer.detokenize(ids).numpy().tolist() == [
        b"the old cats see a dog near the river .",
        "кошка сидит на окне".encode(),
    ]


def test_unknown_characters_become_unk_and_words_keep_a_piece(tokenizer):
    ids = tokenizer.tokenize(tf.constant(["cat ☃"])).numpy().tolist()
    assert ids[0][-1] == UNK_ID
    words = tf.ragged.constant([["cat", "\u200b", "dog's"]])
    per_word = tokenizer.tokenize_pretokenized(words)
    assert per_word.shape[0] == 1
    assert all(len(w) >= 1 for w in per_word[0].to_list())


def test_encode_pairs_segments_and_budget(tokenizer):
    out = tokenizer.encode_pairs(
        tf.constant(["the cat sees a dog near the river ."]), tf.constant(["a bird"]), 10
    )
    ids = out["token_ids"].numpy()[0]
    segments = out["segment_ids"].numpy()[0]
    second = tokenizer.tokenize(tf.constant(["a bird"])).numpy()[0].tolist()
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID and out["padding_mask"].numpy().sum() == 10
    # The short second text is kept whole; the first is trimmed.
    assert ids[-1 - len(second) : -1].tolist() == second
    assert segments.tolist() == [0] * (10 - len(second) - 1) + [1] * (len(second) + 1)


def test_vocab_file_roundtrip_keeps_options(tmp_path, tokenizer):
    path = tokenizer.save(tmp_path / "vocab.txt")
    loaded = WordPieceTokenizer.load(path)
    assert loaded.vocab == tokenizer.vocab
    assert loaded.get_config() == tokenizer.get_config()
    text = tf.constant(["the quiet child hears some songs ."])
    assert np.array_equal(
        loaded.encode(text, 16)["token_ids"], tokenizer.encode(text, 16)["token_ids"]
    )
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b"[PAD]\n[UNK]\n[SEP]\n[CLS]\n[MASK]\na\n", 3, "special tokens must come first"),
        (b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\na\n", 8, "duplicate token"),
        (b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\xff\xfe\n", 6, "invalid UTF-8"),
        (b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhas space\n", 6, "invalid token"),
    ],
)
def test_bad_vocab_file_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad_vocab.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as error:
        WordPieceTokenizer.load(path)
    assert error.value.line == line
    assert f"bad_vocab.txt:{line}" in str(error.value)


def test_empty_vocab_file_raises(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty vocabulary file"):
        WordPieceTokenizer.load(path)


class _TextModule(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(self, text):
        return self.tokenizer.encode(text, 12)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def detokenize(self, ids):
        return self.tokenizer.detokenize(ids)


def test_encode_inside_saved_model_with_vocab_asset(tmp_path, tokenizer):
    vocab_path = tokenizer.save(tmp_path / "vocab.txt")
    module = _TextModule(WordPieceTokenizer.load(vocab_path))
    export_dir = str(tmp_path / "export")
    tf.saved_model.save(module, export_dir)
    assert os.listdir(os.path.join(export_dir, "assets")) == ["vocab.txt"]
    loaded = tf.saved_model.load(export_dir)
    text = tf.constant(["a small dog follows the farmer .", "кошка"])
    expected = tokenizer.encode(text, 12)
    got = loaded.encode(text)
    for key in ("token_ids", "padding_mask"):
        assert np.array_equal(got[key].numpy(), expected[key].numpy())
    assert loaded.detokenize(got["token_ids"]).numpy()[1] == "кошка".encode()


def _op_types(concrete_function) -> set:
    graph_def = concrete_function.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def test_tokenizer_ops_match_traced_graph(tokenizer):
    strings = tf.TensorSpec([None], tf.string)
    functions = [
        tf.function(lambda s: tokenizer.encode(s, 16)).get_concrete_function(strings),
        tf.function(lambda a, b: tokenizer.encode_pairs(a, b, 16)).get_concrete_function(
            strings, strings
        ),
        tf.function(lambda w: tokenizer.tokenize_pretokenized(w)).get_concrete_function(
            tf.RaggedTensorSpec([None, None], tf.string)
        ),
        tf.function(lambda i: tokenizer.detokenize(i)).get_concrete_function(
            tf.TensorSpec([None, None], tf.int32)
        ),
    ]
    ops = set().union(*(_op_types(f) for f in functions))
    core = set(dir(tf.raw_ops))
    text_ops = {
        op
        for op in ops
        if op not in core or any(k in op for k in ("String", "Regex", "Unicode", "UTF8"))
    }
    assert text_ops == set(WORDPIECE_OPS)
    # The custom (non-core) ones are exactly the tensorflow-text kernels.
    assert {op for op in ops if op not in core} == {
        "FastWordpieceTokenizeWithOffsets",
        "NormalizeUTF8",
        "TFText>FastWordpieceDetokenize",
    }
    assert tokenizer_module.WORDPIECE_OPS == tuple(sorted(WORDPIECE_OPS))


def test_encode_signature_runs_in_session_based_loader(tmp_path, tokenizer):
    """TF Serving loads SavedModels through the TF1 session loader."""
    module = _TextModule(tokenizer)
    export_dir = str(tmp_path / "export")
    tf.saved_model.save(module, export_dir, signatures={"encode": module.encode})
    text = ["the tall farmer builds a house ."]
    expected = tokenizer.encode(tf.constant(text), 12)["token_ids"].numpy()
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta_graph.signature_def["encode"]
        feed = {signature.inputs["text"].name: text}
        got = session.run(signature.outputs["token_ids"].name, feed_dict=feed)
    assert np.array_equal(got, expected)
