"""The probe: when it measures, what it logs (JSON lines, TensorBoard), and safe logs."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_model
from tests.interference.fixtures import batches_by_language
from tf_metaling.interference import GradientProbe, SimilarityLog, gradient_similarity, read_similarity_log


@pytest.fixture(scope="module")
def model():
    return tiny_model("adapter")  # the probe only reads it


def _event_tags(log_dir):
    tags = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_probe_measures_every_n_steps_and_logs(model, tmp_path):
    batches = batches_by_language()
    probe = GradientProbe(model, batches, log_dir=str(tmp_path), every_n_steps=3)
    measured = [step for step in range(1, 10) if probe.maybe_record(step) is not None]
    assert measured == [3, 6, 9]
    assert probe.records == 3 and probe.total_seconds > 0

    records = read_similarity_log(probe.log_path)
    assert [r.step for r in records] == [3, 6, 9]
    direct = gradient_similarity(model, batches)
    np.testing.assert_allclose(records[-1].overall, direct.overall, atol=1e-6)
    np.testing.assert_allclose(records[-1].by_group, direct.by_group, atol=1e-6)

    tags = _event_tags(str(tmp_path))
    assert tags["interference/mean_off_diagonal"] == [3, 6, 9]
    for pair in ("en-fr", "en-sw", "fr-sw"):  # three languages: all pairs
        assert tags[f"interference/cosine/{pair}"] == [3, 6, 9]
    assert tags["interference/mean_off_diagonal/block_0/attention"] == [3, 6, 9]
    assert tags["interference/gradient_similarity"] == [3, 6, 9]  # the heatmap image


def test_probe_rejects_bad_configuration(model):
    batches = batches_by_language()
    with pytest.raises(ValueError, match="every_n_steps"):
        GradientProbe(model, batches, every_n_steps=0)
    with pytest.raises(ValueError, match="pair \\('en', 'xx'\\)"):
        GradientProbe(model, batches, pairs=[("en", "xx")])


def test_log_survives_a_torn_line_and_a_resume(model, tmp_path):
    batches = batches_by_language()
    probe = GradientProbe(model, batches, log_dir=str(tmp_path), every_n_steps=1, image=False)
    for step in (10, 20, 30):
        probe.record(step)
    path = probe.log_path
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"step": 40, "languages": ["en"')  # a crash in the middle of a write
    assert [r.step for r in read_similarity_log(path)] == [10, 20, 30]

    SimilarityLog(path)  # reopening for appending cuts the torn line off
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["step"] for line in lines)

    # Training resumed from the checkpoint of step 20: step 30's record is from the lost run.
    resumed = GradientProbe(model, batches, log_dir=str(tmp_path), every_n_steps=10, resume_step=20, image=False)
    resumed.maybe_record(30)
    assert [r.step for r in read_similarity_log(path)] == [10, 20, 30]
    with open(path, encoding="utf-8") as file:
        assert len(file.read().splitlines()) == 3


def test_corrupt_log_line_is_reported_with_its_place(tmp_path):
    path = tmp_path / "gradient_similarity.jsonl"
    path.write_text('{"step": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"gradient_similarity.jsonl:1: not a gradient-similarity record"):
        read_similarity_log(str(path))
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"gradient_similarity.jsonl:1: not a JSON record"):
        read_similarity_log(str(path))


def test_probe_inside_a_distribution_strategy_scope(tmp_path):
    """A model built under MirroredStrategy (two logical CPUs) is probed inside the scope, as a trainer would."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = tiny_model("adapter", seed=4)
    probe = GradientProbe(mirrored, batches_by_language(), log_dir=str(tmp_path), every_n_steps=1, image=False)
    with strategy.scope():
        inside = probe.record(1)
    expected = gradient_similarity(tiny_model("adapter", seed=4), batches_by_language())
    np.testing.assert_allclose(inside.overall, expected.overall, atol=1e-6)
