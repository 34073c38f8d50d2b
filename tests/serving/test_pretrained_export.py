"""A converted BERT (WordPiece, keras-hub's pretokenisation, [PAD]=0 but [CLS]/[SEP]/[MASK] elsewhere) exports."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving import op_check
from serving import signatures as sig
from serving.client import text_inputs
from serving.export import export_model
from tests.models import pretrained_fixtures as fixtures
from tf_metaling.models.pretrained import load_keras_hub_tokenizer, load_pretrained_model, load_pretrained_tokenizer

pytest.importorskip("keras_hub")

TEXTS = ["The quick fox [MASK]", "Der Hund über den [MASK]"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert_export")
    preset = fixtures.write_bert_preset(root / "preset", masked_lm=True)
    tokenizer = load_pretrained_tokenizer(preset)
    model = load_pretrained_model(preset, ["en", "de"], masked_lm=True, language_specific="adapter",
                                  sentence_class_names=["a", "b"], head_dropout=0.0, dropout=0.0,
                                  attention_dropout=0.0)
    path = export_model(model, str(root / "exports"), "bert", 1, tokenizer=tokenizer)
    return preset, model, path


def test_text_signatures_use_the_checkpoints_ids(exported):
    import tensorflow_text  # noqa: F401 - registers the tokenizer's ops before loading

    preset, model, path = exported
    loaded = tf.saved_model.load(path)
    reference = load_keras_hub_tokenizer(preset)
    inputs = text_inputs([t.replace(" [MASK]", "") for t in TEXTS], ["en", "de"])
    served = loaded.signatures[sig.SERVE_TEXT](**{k: tf.constant(v) for k, v in inputs.items()})
    expected = reference(tf.constant([t.replace(" [MASK]", "") for t in TEXTS]))
    expected = expected if isinstance(expected, list) else expected.to_list()
    width = max(len(ids) for ids in expected) + 2
    want = [[reference.cls_token_id] + ids + [reference.sep_token_id] + [reference.pad_token_id] * (width - len(ids) - 2)
            for ids in expected]
    assert served["token_ids"].numpy().tolist() == want
    assert reference.cls_token_id != 2 and reference.mask_token_id != 4  # not the project's fixed ids
    direct = model({"token_ids": served["token_ids"], "padding_mask": served["padding_mask"],
                    "language_ids": tf.constant([0, 1])})["embedding"]
    np.testing.assert_allclose(served["embedding"].numpy(), direct.numpy(), atol=1e-5)


def test_fill_mask_finds_the_checkpoints_mask_token(exported):
    import tensorflow_text  # noqa: F401

    preset, _, path = exported
    loaded = tf.saved_model.load(path)
    reference = load_keras_hub_tokenizer(preset)
    outputs = loaded.signatures[sig.FILL_MASK](**{k: tf.constant(v) for k, v in text_inputs(TEXTS, ["en", "de"]).items()})
    token_ids = outputs["token_ids"].numpy()
    positions = outputs["mask_positions"].numpy()
    assert positions.shape == (2, 1) and (positions >= 0).all()
    assert all(token_ids[row, positions[row, 0]] == reference.mask_token_id for row in range(2))
    special = {reference.pad_token_id, reference.cls_token_id, reference.sep_token_id, reference.mask_token_id,
               reference.token_to_id("[UNK]")}
    assert not set(outputs["top_token_ids"].numpy().ravel().tolist()) & special


def test_text_ops_are_allow_listed(exported):
    _, _, path = exported
    ops = set().union(*(op_check.signature_op_types(path, name) for name in (sig.SERVE_TEXT, sig.FILL_MASK)))
    not_core = op_check.ops_not_in_core_tensorflow(ops)
    assert {"RegexSplitWithOffsets", "CaseFoldUTF8"} <= not_core
    assert not_core <= op_check.read_allowlist(), not_core - op_check.read_allowlist()
