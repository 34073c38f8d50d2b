"""The ops of every exported signature: core TensorFlow, plus only allow-listed tensorflow-text ops."""

from __future__ import annotations

from serving import op_check
from serving import signatures as sig
from tf_metaling.tokenizers import BERT_PRETOKENIZER_OPS, SENTENCEPIECE_OPS, WORDPIECE_OPS


def test_signature_ops_are_core_or_allow_listed(text_export):
    allowlist = op_check.read_allowlist()
    signatures = [
        sig.SERVING_DEFAULT,
        sig.SERVE_TEXT,
        sig.EMBED,
        sig.FILL_MASK,
        sig.TAG,
        sig.SENTENCE_CLASSIFICATION,
        sig.CLASSIFY,
    ]
    ops = {name: op_check.signature_op_types(text_export, name) for name in signatures}
    # One fresh interpreter answers for every op (it takes seconds to import TensorFlow).
    not_core = op_check.ops_not_in_core_tensorflow(set().union(*ops.values()) | {"NoSuchOpAnywhere"})
    assert "NoSuchOpAnywhere" in not_core and "MatMul" not in not_core
    # serving_default must load in any stock TF Serving: core ops only.
    assert not (ops[sig.SERVING_DEFAULT] & not_core)
    assert "MatMul" in ops[sig.SERVING_DEFAULT] or "BatchMatMulV2" in ops[sig.SERVING_DEFAULT]
    for name in signatures[1:]:
        assert ops[name] & not_core <= allowlist, (name, sorted(ops[name] & not_core - allowlist))
    # The text signatures really use the text ops (so the check above is not vacuous).
    assert ops[sig.SERVE_TEXT] & not_core == {"FastWordpieceTokenizeWithOffsets", "NormalizeUTF8"}


def test_allowlist_names_only_tokenizer_ops():
    allowlist = op_check.read_allowlist()
    # The project's tokenizer, and those of converted checkpoints (tf_metaling.models.pretrained).
    assert allowlist and allowlist <= set(WORDPIECE_OPS) | set(BERT_PRETOKENIZER_OPS) | set(SENTENCEPIECE_OPS)
