"""`make demo`'s last step: export, serve, answer one request, shut down."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from serving.demo import _summary, export_and_query


def test_export_and_query_answers_one_request(ids_model, tmp_path, capsys):
    answer = export_and_query(ids_model, str(tmp_path), model_name="demo", protocol="grpc", language="sw")
    printed = capsys.readouterr().out
    assert answer["version"] == 1 and answer["signature"] == "embed" and answer["protocol"] == "grpc"
    assert "GRPC embed on demo version 1" in printed and "norm" in printed
    expected = ids_model(
        {
            "token_ids": tf.constant([[2, 7, 11, 13, 3]]),
            "padding_mask": tf.ones((1, 5), tf.int32),
            "language_ids": tf.constant([2]),
        },
        outputs=["embedding"],
    )["embedding"].numpy()
    np.testing.assert_allclose(answer["outputs"]["embedding"], expected, atol=1e-5)


def test_fill_mask_summary_lists_candidates_per_mask():
    outputs = {"top_tokens": [[["cat", "dog"], ["mat", "rug"]]], "top_probabilities": [[[0.5, 0.25], [0.75, 0.125]]]}
    assert _summary("fill_mask", outputs).splitlines() == [
        "  [MASK] #1: cat 0.500, dog 0.250",
        "  [MASK] #2: mat 0.750, rug 0.125",
    ]
