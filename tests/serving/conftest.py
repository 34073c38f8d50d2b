"""Session fixtures: one tiny text model, its exports and one running server shared by the tests.

Exporting and loading take seconds each, so they happen once per session; the
tests only send requests.
"""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

from serving.export import export_model
from serving.model_manager import ModelConfig
from serving.request_limits import RequestLimits
from serving.server import ModelServer
from tests.helpers import tiny_model
from tests.serving import fixtures

TEXT_MODEL = "tiny"
IDS_MODEL = "ids"
MAX_REQUEST_BYTES = 64 * 1024
MAX_REQUEST_BATCH_SIZE = 8


@pytest.fixture(scope="session")
def tokenizer():
    return fixtures.tiny_tokenizer()


@pytest.fixture(scope="session")
def text_model(tokenizer):
    return fixtures.tiny_text_model(tokenizer)


@pytest.fixture(scope="session")
def ids_model():
    """A model without tokenizer (token-id signatures only), masked LM head only."""
    return tiny_model()


@pytest.fixture(scope="session")
def export_base(tmp_path_factory):
    return str(tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="session")
def text_export(text_model, tokenizer, export_base):
    return export_model(
        text_model,
        export_base,
        TEXT_MODEL,
        1,
        tokenizer=tokenizer,
        warmup_texts={"sw": "habari ya leo"},
        metrics={"mlm_accuracy/en": 0.25},
    )


@pytest.fixture(scope="session")
def ids_export(ids_model, export_base):
    """Exported with the fallback policy: unknown languages are served as French."""
    return export_model(ids_model, export_base, IDS_MODEL, 1, unknown_language="default", default_language="fr")


@pytest.fixture(scope="session")
def loaded_text(text_export):
    import tensorflow_text  # noqa: F401 - registers the tokenizer's ops before loading

    return tf.saved_model.load(text_export)


@pytest.fixture(scope="session")
def loaded_ids(ids_export):
    return tf.saved_model.load(ids_export)


@pytest.fixture(scope="session")
def server(text_export, ids_export, export_base):
    """Both models on loopback, free ports, small limits so the limit errors are cheap to trigger."""
    models = [
        ModelConfig(TEXT_MODEL, os.path.join(export_base, TEXT_MODEL), version_labels={"stable": 1}),
        ModelConfig(IDS_MODEL, os.path.join(export_base, IDS_MODEL)),
    ]
    running = ModelServer(
        models,
        grpc_port=0,
        rest_port=0,
        poll_seconds=0,
        limits=RequestLimits(max_request_bytes=MAX_REQUEST_BYTES, max_request_batch_size=MAX_REQUEST_BATCH_SIZE),
    ).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def rest(server):
    from serving.client import RestClient

    client = RestClient(f"127.0.0.1:{server.rest_port}", TEXT_MODEL)
    yield client
    client.close()


@pytest.fixture(scope="session")
def grpc_client(server):
    from serving.client import GrpcClient

    client = GrpcClient(f"127.0.0.1:{server.grpc_port}", TEXT_MODEL)
    yield client
    client.close()
