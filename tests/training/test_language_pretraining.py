"""Stage 1 of the transfer protocol on a tiny converted backbone: the model, its steps and its meta-gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import directional_meta_gradient
from tests.models import pretrained_fixtures as fixtures
from tf_metaling.meta.meta_step import MetaOptions, MetaStep
from tf_metaling.models import pretrained
from tf_metaling.models.partition import partition_variables
from tf_metaling.optimizers import RowSparseAdam
from tf_metaling.training.language_pretraining import corpus_vocabulary, stage1_losses, stage1_model

pytest.importorskip("keras_hub")

LANGUAGES = ["en", "ar", "tr"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return str(fixtures.write_xlm_roberta_preset(tmp_path_factory.mktemp("preset") / "xlmr"))


def _model(preset, dtype=None, train_weights="language_specific_and_heads"):
    options = {"language_specific": "adapter", "language_specific_layers": [1], "adapter_dim": 4,
               "dropout": 0.0, "attention_dropout": 0.0}
    if dtype:
        options["dtype"] = dtype
    encoder = pretrained.load_pretrained_encoder(preset, LANGUAGES, **options)
    tokenizer = pretrained.load_pretrained_tokenizer(preset)
    vocabulary = corpus_vocabulary(tokenizer, [{"en": fixtures.MULTILINGUAL_TEXTS[:5]}])
    model = stage1_model(encoder, vocabulary, train_weights)
    # Adapters start as the identity (zero up-projection): give them values, so every row differs.
    rng = np.random.RandomState(3)
    for variable in partition_variables(model).language:
        variable.assign(rng.normal(scale=0.3, size=variable.shape).astype(variable.dtype))
    return model, tokenizer, vocabulary


def _batch(tokenizer, vocabulary, language_ids, seed):
    rng = np.random.RandomState(seed)
    texts = [fixtures.MULTILINGUAL_TEXTS[i % 5] for i in range(len(language_ids))]
    inputs = tokenizer.encode(tf.constant(texts), 12)
    lengths = inputs["padding_mask"].numpy().sum(1)
    positions = np.stack([rng.choice(np.arange(1, max(int(n) - 1, 3)), 2, replace=False) for n in lengths])
    ids = inputs["token_ids"].numpy()
    targets = np.take_along_axis(ids, positions, axis=1)
    masked = ids.copy()
    np.put_along_axis(masked, positions, tokenizer.mask_id, axis=1)
    return {"token_ids": tf.constant(masked), "padding_mask": inputs["padding_mask"],
            "language_ids": tf.constant(np.asarray(language_ids, np.int32)),
            "mask_positions": tf.constant(positions.astype(np.int32)), "mask_ids": tf.constant(targets),
            "mask_weights": tf.ones(positions.shape, tf.float32)}


def test_the_restricted_head_is_tied_to_the_vocabularys_embeddings(preset):
    model, tokenizer, vocabulary = _model(preset)
    assert model.masked_lm_head.vocabulary_size == len(vocabulary) < tokenizer.vocab_size
    batch = _batch(tokenizer, vocabulary, [0, 1, 2, 0], seed=0)
    logits = model(batch, training=False, outputs=("masked_lm_logits",))["masked_lm_logits"].numpy()
    # Logit i is the transformed hidden state against token vocabulary[i]'s input embedding, plus its bias.
    head = model.masked_lm_head
    sequence = model(batch, training=False, outputs=("sequence_output",))["sequence_output"]
    gathered = tf.gather(sequence, batch["mask_positions"], batch_dims=1)
    hidden = head.norm(head.activation(tf.tensordot(gathered, head.transform_kernel, 1) + head.transform_bias))
    embeddings = model.encoder.token_embeddings.numpy()[vocabulary]
    expected = np.einsum("bpd,vd->bpv", hidden.numpy(), embeddings) + head.output_bias.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    positions = model.vocabulary_positions(batch["mask_ids"]).numpy()
    np.testing.assert_array_equal(np.asarray(vocabulary)[positions], batch["mask_ids"].numpy())
    # Only the LS layers and the head train; the pretrained encoder is frozen.
    trained = {v.path.split("/")[0] for v in model.trainable_variables}
    assert all("adapter" in v.path or "masked_lm_head" in v.path for v in model.trainable_variables), trained


@pytest.mark.parametrize("meta", [False, True])
def test_a_languages_layers_change_only_when_its_text_is_trained(preset, meta):
    model, tokenizer, vocabulary = _model(preset)
    losses, _ = stage1_losses(model)
    step = MetaStep(model, losses, keras.optimizers.Adam(1e-2), RowSparseAdam(1e-2) if meta else None,
                    MetaOptions(one_language_batches=True), output_names=("masked_lm_logits",))
    language = partition_variables(model).language
    before = [v.numpy().copy() for v in language]
    train = _batch(tokenizer, vocabulary, [1, 1, 1, 1], seed=1)  # ar's text only
    if meta:
        meta_batch = _batch(tokenizer, vocabulary, [0, 0, 1, 1, 2, 2], seed=2)  # held-out text of every language
        step.meta_step(train, _batch(tokenizer, vocabulary, [1, 1, 1, 1], seed=3), meta_batch, tf.constant(1))
    else:
        step.ordinary_step(train)
    for variable, old in zip(language, before):
        new = variable.numpy()
        assert not np.allclose(new[1], old[1]), variable.path  # ar's row moved
        np.testing.assert_array_equal(new[0], old[0])  # en's and tr's did not
        np.testing.assert_array_equal(new[2], old[2])


def test_the_mlm_meta_gradient_matches_finite_differences(preset):
    model, tokenizer, vocabulary = _model(preset, dtype="float64")
    losses, _ = stage1_losses(model)
    k = 1
    step = MetaStep(model, losses, keras.optimizers.SGD(0.1), RowSparseAdam(1e-2),
                    MetaOptions(inner_learning_rate=0.5), output_names=("masked_lm_logits",))
    lookahead = _batch(tokenizer, vocabulary, [k] * 4, seed=4)
    meta = _batch(tokenizer, vocabulary, [0, 0, 1, 1, 2, 2], seed=5)
    analytic, numeric = directional_meta_gradient(step, lookahead, meta, k)
    assert abs(analytic) > 1e-5
    assert abs(analytic - numeric) / abs(numeric) < 1e-4, (analytic, numeric)
    # The look-ahead's second-order term is part of it: first order gives another figure.
    first = MetaStep(model, losses, keras.optimizers.SGD(0.1), RowSparseAdam(1e-2),
                     MetaOptions(inner_learning_rate=0.5, first_order=True), output_names=("masked_lm_logits",))
    first_value, _ = directional_meta_gradient(first, lookahead, meta, k)
    assert abs(first_value - numeric) / abs(numeric) > 1e-3
