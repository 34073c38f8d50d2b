"""Console entry points: the exporter in-process, the server as a real process with graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from serving import export as export_module
from serving.client import GrpcClient, RestClient
from tf_metaling import checkpoints
from tf_metaling.tokenizers import SPECIAL_TOKENS, WordPieceTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model_dir_with_vocabulary(model, path):
    """A trainer-style model_dir: model.json, a checkpoint, vocab.txt, config.yaml, eval_results.json."""
    checkpoints.save_model_config(model, str(path))
    tf.train.Checkpoint(model=model).save(str(path / "ckpt"))
    # A vocabulary of exactly the model's 40 ids, so the export gets text signatures.
    words = ["the", "cat", "sat", "on", "mat", "le", "chat", "paka", "na", "mbwa"]
    pieces = words + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##s"]
    WordPieceTokenizer(list(SPECIAL_TOKENS) + pieces[: model.encoder.vocabulary_size - len(SPECIAL_TOKENS)]).save(
        str(path / "vocab.txt")
    )
    (path / "config.yaml").write_text("task: mlm\nmodel:\n  hidden_dim: 8\n")
    (path / "eval_results.json").write_text(json.dumps({"perplexity": {"sw": 12.5}}))


@pytest.mark.slow
def test_export_and_server_commands(ids_model, tmp_path):
    model_dir = tmp_path / "run"
    _model_dir_with_vocabulary(ids_model, model_dir)
    values = flags.FlagValues()
    export_module.define_flags(values)
    values(
        [
            "tf-metaling-export",
            f"--model_dir={model_dir}",
            f"--export_base={tmp_path / 'exports'}",
            "--model_name=cli",
            "--version=4",
            "--unknown_language=default",
            "--default_language=sw",
        ]
    )
    path = export_module.export_from_flags(values)
    assert path == str(tmp_path / "exports" / "cli" / "4")
    with open(os.path.join(path, "model_card.md"), encoding="utf-8") as file:
        card = file.read()
    assert "hidden_dim: 8" in card and "perplexity/sw | 12.5" in card and "ckpt-1" in card
    assert "served as `sw`" in card and "tokenizer exported" in card

    environment = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.server",
            "--model_name=cli",
            f"--model_base_path={tmp_path / 'exports' / 'cli'}",
            "--port=0",
            "--rest_api_port=0",
            "--file_system_poll_wait_seconds=0",
            "--enable_batching",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=REPO,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("serving gRPC="), (line, process.stderr.read() if process.poll() is not None else "")
        grpc_port, rest_port = (int(part.split("=")[1]) for part in line.split()[1:])
        texts = ["the cat sat", "paka na mbwa"]
        tokens = [[2, 5, 6, 7, 3], [2, 12, 13, 14, 3]]  # [CLS] words [SEP]: whole words are in the vocabulary
        padding_mask = [[1] * 5, [1] * 5]
        expected = ids_model(
            {
                "token_ids": tf.constant(tokens),
                "padding_mask": tf.constant(padding_mask),
                "language_ids": tf.constant([0, 2]),
            },
            outputs=["embedding"],
        )["embedding"].numpy()
        rest = RestClient(f"127.0.0.1:{rest_port}", "cli")
        grpc_client = GrpcClient(f"127.0.0.1:{grpc_port}", "cli")
        # "xx" is unknown: this export serves it as sw.
        served = rest.predict_text("serve_text", texts, ["en", "xx"])
        assert served["token_ids"] == tokens
        np.testing.assert_allclose(served["embedding"], expected, atol=1e-5)
        np.testing.assert_allclose(
            grpc_client.predict_text("embed", texts, ["en", "sw"])["embedding"], expected, atol=1e-5
        )
        assert rest.status()["model_version_status"][0]["version"] == "4"
        rest.close()
        grpc_client.close()
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors[-3000:]
    assert "server stopped" in errors and "unloaded version 4" in errors
