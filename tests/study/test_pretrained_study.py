"""The study's fine-tuning comparison on a pretrained preset (make demo's second part, in small)."""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling import checkpoints
from tf_metaling.models.multilingual_model import SENTENCE_LOGITS
from tf_metaling.study.comparison_study import ComparisonStudy
from tf_metaling.study.plan import run_name
from tf_metaling.study.study_directory import RESULTS_FILE

from ..helpers import study_config

pytest.importorskip("keras_hub")

TINY = {
    "model": {"adapter_dim": 4, "language_specific_layers": [1], "dropout": 0.0, "attention_dropout": 0.0},
    "data": {"sequence_length": 16, "batch_size": 4, "eval_batch_size": 8, "meta_examples_per_language": 2,
             "low_resource_size": 200},
    "trainer": {"train_steps": 4, "warmup_steps": 0, "steps_per_loop": 2, "checkpoint_interval": 4,
                "eval_interval": 4, "summary_interval": 2, "learning_rate": 1e-2},
    "meta": {"every_n_steps": 1},
}


def _study(setting, output_dir, name="study_pretrained_finetune", **changes):
    cache_dir, preset = setting
    run = {**TINY, "data": {**TINY["data"], "cache_dir": cache_dir, "languages": ["en", "ar"]},
           "finetune": {"init_preset": preset}}
    config = study_config(name, {"variants": ["joint_all_ls", "joint_all_meta_ls"], "seeds": [0], "run": run,
                                 "evaluation": {"retrieval_pairs": 8}, **changes})
    log = io.StringIO()
    return ComparisonStudy(config, output_dir, log=log), log


def test_finetuning_comparison_scores_the_finetuned_classifier_in_every_language(setting, tmp_path):
    output_dir = str(tmp_path / "study")
    study, log = _study(setting, output_dir)
    collected = study.run()
    metric = "finetuned:revelation_period"
    assert set(collected["records"]) == {metric, "retrieval"}
    for variant in ("joint_all_ls", "joint_all_meta_ls"):
        assert set(collected["records"][metric][variant]) == {"en", "ar"}
        assert set(collected["records"]["retrieval"][variant]) == {"ar"}
        # The fine-tune trains on the pivot only: the steps are the experiment's, not scaled by languages.
        with open(os.path.join(output_dir, "runs", run_name(variant, None, 0), RESULTS_FILE)) as file:
            assert json.load(file)["step"] == 4
    # The record is the classifier's own accuracy: recompute it by calling the restored model directly.
    run_dir = os.path.join(output_dir, "runs", run_name("joint_all_meta_ls", None, 0))
    model = checkpoints.restore_model(run_dir)
    tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(run_dir))
    task = study.tasks.classification["revelation_period"]
    for code in ("en", "ar"):
        examples = task.test[code]
        inputs = {**tokenizer.encode(tf.constant([e.text for e in examples]), 16),
                  "language_ids": tf.fill([len(examples)], model.language_vocabulary.index(code))}
        predicted = np.argmax(model(inputs, training=False, outputs=(SENTENCE_LOGITS,))[SENTENCE_LOGITS], -1)
        expected = np.array([task.label_names.index(e.label) for e in examples])
        record = collected["records"][metric]["joint_all_meta_ls"][code]["0"]
        assert record["value"] == pytest.approx(float(np.mean(predicted == expected)))
        assert record["baseline"] == pytest.approx(0.5)  # balanced test set, two classes
    report = study.report(collected)
    table = open(report["table"], encoding="utf-8").read()
    assert "Accuracy of the classifier fine-tuned on en (LS layers + head, 4 steps)" in table.replace("\n", " ")
    assert "not strictly zero-shot" in table.replace("\n", " ")
    assert report["report"] is None  # no masked-LM head: no interference report of MLM losses
    # A rerun skips both runs.
    again, log = _study(setting, output_dir)
    again.run()
    assert log.getvalue().count("finished earlier, skipped") == 2


def test_finetuning_comparison_refuses_variants_and_tasks_it_cannot_run(setting, tmp_path):
    with pytest.raises(ValueError, match="fine-tuned as one model of all languages"):
        _study(setting, str(tmp_path / "a"), variants=["mono", "joint_all_ls"])
    with pytest.raises(ValueError, match="evaluation.finetune_task='nope'"):
        _study(setting, str(tmp_path / "b"), evaluation={"finetune_task": "nope"})
    with pytest.raises(ValueError, match="field run.task: fine-tuning a pretrained encoder"):
        _study(setting, str(tmp_path / "c"), name="study_tiny")
    assert not os.path.exists(tmp_path / "a")
