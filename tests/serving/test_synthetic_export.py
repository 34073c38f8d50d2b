"""A model of synthetic languages exports with their transforms inside the text signatures.

The model_dir is written the way the trainer writes it (`build_mlm_inputs` with
the tiny preset's synthetic corpus: vocab.txt and synthetic_languages.json),
plus the tiny model's config and one checkpoint.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from serving.export import export_model_dir
from tests.helpers import tiny_encoder
from tf_metaling import checkpoints
from tf_metaling.configs import get_experiment
from tf_metaling.data.corpora.synthetic_corpus import SyntheticCorpus
from tf_metaling.data.synthetic import SYNTHETIC_LANGUAGES_FILE
from tf_metaling.models import MultilingualModel
from tf_metaling.tokenizers import CLS_ID, MASK_ID, NUM_SPECIAL_TOKENS, SEP_ID
from tf_metaling.training.mlm_inputs import build_mlm_inputs

LANGUAGES = ["en", "xx", "yy"]  # the tiny preset's: xx shifted once and reversed, yy shifted twice
TEXT = "the old cats see a dog near the river ."


@pytest.fixture(scope="module")
def corpus():
    return SyntheticCorpus(LANGUAGES, vocab_size=200, seed=0, train_per_language=40, valid_per_language=4)


def _model_dir(path, corpus, record=True, config_languages=LANGUAGES):
    data = get_experiment("tiny").data
    inputs = build_mlm_inputs(data, str(path), seed=0, corpus=corpus)  # writes vocab.txt and the definitions
    if not record:
        os.remove(path / SYNTHETIC_LANGUAGES_FILE)
    encoder = tiny_encoder(languages=LANGUAGES, vocabulary_size=inputs.vocab_size, max_sequence_length=24)
    model = MultilingualModel(encoder, head_dropout=0.0)
    checkpoints.save_model_config(model, str(path))
    tf.train.Checkpoint(model=model).save(str(path / "ckpt"))
    (path / "config.yaml").write_text(
        "data:\n  corpus: synthetic\n  languages: [" + ", ".join(config_languages) + "]\n"
    )
    return model


@pytest.fixture(scope="module")
def exported(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    model = _model_dir(root / "run", corpus)
    path = export_model_dir(str(root / "run"), str(root / "exports"), "synthetic", 1)
    return model, tf.saved_model.load(path), path


def _expected_ids(corpus, code, text=TEXT):
    tokenizer = corpus.fixed_tokenizer()
    pieces = corpus.synthetic.transform(code)(tokenizer.tokenize_words(tf.constant([text])))  # as in training
    return [CLS_ID] + pieces.merge_dims(1, 2).to_list()[0] + [SEP_ID]


def test_the_model_dir_records_the_synthetic_languages(corpus, exported):
    assert corpus.synthetic.vocab_size == exported[0].encoder.vocabulary_size == 5 + 3 * (
        corpus.fixed_tokenizer().vocab_size - NUM_SPECIAL_TOKENS)
    assert "Synthetic languages" in open(os.path.join(exported[2], "model_card.md"), encoding="utf-8").read()


def test_serve_text_applies_each_languages_transform_in_the_graph(corpus, exported):
    model, loaded, _ = exported
    serve_text = loaded.signatures["serve_text"]
    outputs = serve_text(text=tf.constant([TEXT] * 3), language=tf.constant(["xx", "en", "yy"]))
    ids = outputs["token_ids"].numpy()
    for row, code in enumerate(["xx", "en", "yy"]):
        expected = _expected_ids(corpus, code)
        assert ids[row, : len(expected)].tolist() == expected
    assert ids[0].tolist() != ids[1].tolist() != ids[2].tolist()
    direct = model({"token_ids": outputs["token_ids"], "padding_mask": outputs["padding_mask"],
                    "language_ids": tf.constant([1, 0, 2])}, training=False)
    np.testing.assert_allclose(outputs["embedding"].numpy(), direct["embedding"].numpy(), atol=1e-5)


def test_fill_mask_answers_with_the_examples_language_spelled_in_the_base_vocabulary(corpus, exported):
    _, loaded, _ = exported
    text = "the old cats [MASK] a dog ."
    outputs = loaded.signatures["fill_mask"](text=tf.constant([text] * 2), language=tf.constant(["en", "xx"]))
    ids = outputs["token_ids"].numpy()
    # xx reverses the words: the mask, a word of its own, moves with them
    assert ids[0].tolist().index(MASK_ID) == 4 and ids[1].tolist().index(MASK_ID) == 4
    for row, code in enumerate(["en", "xx"]):
        without_mask = [i for i in ids[row].tolist() if i != MASK_ID]
        expected = _expected_ids(corpus, code, "the old cats a dog .")
        assert without_mask[: len(expected)] == expected
    top = outputs["top_token_ids"].numpy()[:, 0, :]
    for row, code in enumerate(["en", "xx"]):
        low, high = corpus.synthetic.id_range(code)
        assert ((top[row] >= low) & (top[row] < high)).all(), (code, top[row])
    tokenizer = corpus.fixed_tokenizer()
    spelled = [[t.decode() for t in row] for row in outputs["top_tokens"].numpy()[:, 0, :]]
    base = corpus.synthetic.to_base_ids(top).numpy()
    assert spelled == [[tokenizer.vocab[i] for i in row] for row in base]


def test_an_old_model_dir_is_rebuilt_from_config_or_refused_with_what_to_do(corpus, tmp_path):
    _model_dir(tmp_path / "old", corpus, record=False)
    from serving.export import synthetic_languages_of

    model = checkpoints.restore_model(str(tmp_path / "old"))
    tokenizer = corpus.fixed_tokenizer()
    rebuilt = synthetic_languages_of(str(tmp_path / "old"), model, tokenizer)
    assert rebuilt.to_dict() == corpus.synthetic.to_dict()
    # a Mono-style config (one language) cannot say which range the model's ids use
    (tmp_path / "old" / "config.yaml").write_text("data:\n  corpus: synthetic\n  languages: [xx]\n")
    with pytest.raises(ValueError, match="synthetic_languages.json.*missing.*--token_ids_only"):
        export_model_dir(str(tmp_path / "old"), str(tmp_path / "exports"), "old", 1)
    assert not os.path.exists(tmp_path / "exports" / "old" / "1")
    path = export_model_dir(str(tmp_path / "old"), str(tmp_path / "exports"), "old", 1, token_ids_only=True)
    assert "serve_text" not in tf.saved_model.load(path).signatures


def test_the_transforms_add_only_core_ops(exported):
    from serving import op_check

    names = ("serve_text", "fill_mask", "embed")
    ops = {name: op_check.signature_op_types(exported[2], name) for name in names}
    not_core = op_check.ops_not_in_core_tensorflow(set().union(*ops.values()))
    for name, types in ops.items():
        assert types & not_core <= op_check.read_allowlist(), (name, sorted(types & not_core))


def test_the_session_loader_of_tf_serving_runs_the_transforms(exported):
    import tensorflow_text  # noqa: F401 - the graph holds text ops

    _, loaded, path = exported
    texts = np.asarray([TEXT.encode()] * 2, dtype=object)
    languages = np.asarray([b"yy", b"xx"], dtype=object)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        signature = tf.compat.v1.saved_model.loader.load(session, ["serve"], path).signature_def["serve_text"]
        feeds = {signature.inputs["text"].name: texts, signature.inputs["language"].name: languages}
        token_ids = session.run(signature.outputs["token_ids"].name, feed_dict=feeds)
    eager = loaded.signatures["serve_text"](text=tf.constant(texts), language=tf.constant(languages))
    np.testing.assert_array_equal(token_ids, eager["token_ids"].numpy())
