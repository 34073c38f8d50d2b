"""The transfer protocol on a tiny converted preset: stage 1 per language, English head, zero-shot swap."""

import io
import json
import os

import numpy as np
import pytest

from tests.models import pretrained_fixtures as fixtures
from tf_metaling import checkpoints
from tf_metaling.data.corpora import build_builtin_corpus
from tf_metaling.study.evaluation.embeddings import sentence_embeddings
from tf_metaling.study.transfer_study import TransferStudy

from ..data.corpus_fixtures import write_fake_packages
from ..helpers import study_config

pytest.importorskip("keras_hub")

TINY = {
    "model": {"adapter_dim": 4, "language_specific_layers": [1], "dropout": 0.0, "attention_dropout": 0.0},
    "data": {"sequence_length": 16, "batch_size": 4, "eval_batch_size": 8, "eval_batches_per_language": 1,
             "meta_examples_per_language": 2, "low_resource_size": 200, "max_predictions": 3,
             "shuffle_buffer": 50},
    "trainer": {"train_steps": 4, "warmup_steps": 0, "steps_per_loop": 2, "checkpoint_interval": 4,
                "eval_interval": 2, "summary_interval": 2, "learning_rate": 1e-2},
}
TRANSFER = {"enabled": True, "head_steps": 2, "task_sequence_length": 16, "classification_train": 40,
            "probe_cs": [0.1, 1.0], "probe_folds": 2, "finetune_steps": 4, "finetune_eval_interval": 2,
            "finetune_batch_size": 4, "finetune_learning_rates": [1e-3]}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    pins, downloader = write_fake_packages(str(tmp_path_factory.mktemp("packages")))
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    build_builtin_corpus(cache_dir, pins, downloader)
    preset = fixtures.write_xlm_roberta_preset(tmp_path_factory.mktemp("preset") / "xlmr")
    return cache_dir, str(preset)


def _study(setting, output_dir, variants=("joint_all_ls", "joint_all_meta_ls"), seeds=(0,), **transfer):
    cache_dir, preset = setting
    run = {**TINY, "data": {**TINY["data"], "cache_dir": cache_dir, "languages": ["en", "ar"]},
           "finetune": {"init_preset": preset}}
    config = study_config("study_pretrained_demo", {
        "variants": list(variants), "seeds": list(seeds), "run": run, "evaluation": {"retrieval_pairs": 8},
        "transfer": {**TRANSFER, **transfer}})
    log = io.StringIO()
    return TransferStudy(config, output_dir, log=log), log


@pytest.fixture(scope="module")
def finished(setting, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("transfer"))
    study, log = _study(setting, output_dir)
    collected = study.run()
    return study, collected, study.report(collected), log


def test_the_protocol_writes_stage_one_and_the_zero_shot_table(finished):
    study, collected, report, log = finished
    seed = collected["seeds"][0]
    assert set(seed["stage1"]) == {"reference", "joint_all_ls", "joint_all_meta_ls"}
    rows = seed["classification"]["revelation_period"]
    assert set(rows) == {"majority", "probe", "joint_all_ls", "joint_all_meta_ls", "joint_all_ls:no_swap",
                         "joint_all_meta_ls:no_swap"}
    for row in rows.values():
        for code, cell in row.items():
            assert sum(cell["shares"]) == pytest.approx(1.0)
    table = open(report["table"], encoding="utf-8").read()
    assert "Verdict (f)" in table and "frozen-encoder probe" in table
    print(table)
