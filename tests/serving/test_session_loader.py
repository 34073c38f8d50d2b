"""The export loads in the session-based loader that TF Serving and saved_model_cli use."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving import signatures as sig
from tests.serving import fixtures


@pytest.fixture(scope="module")
def session_run(text_export):
    """Loads the text export once with the TF1 loader; returns run(signature, inputs)."""
    import tensorflow_text  # noqa: F401 - the graph holds text ops

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], text_export)

    def run(signature_name, inputs):
        signature = meta_graph.signature_def[signature_name]
        feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
        names = sorted(signature.outputs)
        values = session.run([signature.outputs[key].name for key in names], feed_dict=feeds)
        return dict(zip(names, values))

    yield run
    session.close()


def test_session_loader_runs_text_and_id_signatures(session_run, loaded_text, tokenizer):
    texts = np.asarray([b"the cat sat", b"paka ameketi"], dtype=object)
    languages = np.asarray([b"en", b"sw"], dtype=object)
    session_text = session_run(sig.SERVE_TEXT, {"text": texts, "language": languages})
    eager_text = loaded_text.signatures[sig.SERVE_TEXT](text=tf.constant(texts), language=tf.constant(languages))
    np.testing.assert_allclose(session_text["embedding"], eager_text["embedding"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(session_text["token_ids"], eager_text["token_ids"].numpy())

    batch = fixtures.id_batch(("fr", "en", "sw"), vocabulary_size=tokenizer.vocab_size)
    session_ids = session_run(sig.SERVING_DEFAULT, batch)
    eager_ids = loaded_text.signatures[sig.SERVING_DEFAULT](**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(session_ids["sequence_output"], eager_ids["sequence_output"].numpy(), atol=1e-6)


def test_session_loader_reports_unknown_language(session_run):
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown language code"):
        session_run(
            sig.EMBED, {"text": np.asarray([b"x"], dtype=object), "language": np.asarray([b"zz"], dtype=object)}
        )
