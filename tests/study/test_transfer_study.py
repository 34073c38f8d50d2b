"""The transfer protocol on a tiny converted preset: stage 1 per language, English head, zero-shot swap."""

import io
import os

import numpy as np
import pytest

from tests.models import pretrained_fixtures as fixtures
from tf_metaling import checkpoints
from tf_metaling.study.evaluation.embeddings import centered, sentence_embeddings
from tf_metaling.study.transfer_study import TransferStudy

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
    # The runs it trained are the runs the study's listing counts.
    from tf_metaling.study.plan import count_runs

    trained = [name for name in os.listdir(os.path.join(study.output_dir, "runs")) if name != "evaluation"]
    assert sorted(trained) == ["joint_all_ls", "joint_all_meta_ls", "reference"] and count_runs(study.config) == 3
    # Not converged (4 steps): verdict (f) is withheld, saying why.
    assert "(f) ar: " in table and "no verdict" in table and "stage-1 runs did not converge" in table


def _poisoned(task, pivot="en"):
    """`task` with every label of every language but the pivot flipped, test sets excepted."""
    import dataclasses

    flip = {task.label_names[0]: task.label_names[1], task.label_names[1]: task.label_names[0]}

    def poison(examples):
        return [dataclasses.replace(e, label=flip[e.label]) for e in examples]

    return dataclasses.replace(
        task, valid={c: (ex if c == pivot else poison(ex)) for c, ex in task.valid.items()},
        train_by_language={c: (ex if c == pivot else poison(ex)) for c, ex in task.train_by_language.items()})


def _models(study, seed=0):
    names = {"reference": study.reference_seed, "joint_all_ls": seed, "joint_all_meta_ls": seed}
    models = {name: checkpoints.restore_model(study.run_dir(name, s)) for name, s in names.items()}
    tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(study.run_dir("reference", study.reference_seed)))
    return models, tokenizer


def test_the_zero_shot_path_never_reads_a_target_language_label(finished):
    study, collected, _, _ = finished
    models, tokenizer = _models(study)
    task = study.tasks["revelation_period"]
    clean = study.zero_shot_rows(models, tokenizer, task, 0)
    poisoned = study.zero_shot_rows(models, tokenizer, _poisoned(task), 0)
    assert clean == poisoned
    # The study's own rows are these.
    assert collected["seeds"][0]["classification"]["revelation_period"]["joint_all_ls"] == clean["joint_all_ls"]


def test_joint_all_never_reads_a_target_language_label(setting, tmp_path):
    study, _ = _study(setting, str(tmp_path / "a"), variants=["joint_all"])
    task = study.tasks["revelation_period"]
    clean = study.joint_all_row(task, 0)
    again, _ = _study(setting, str(tmp_path / "b"), variants=["joint_all"])
    poisoned = again.joint_all_row(_poisoned(task), 0)
    assert {c: r["predictions"] for c, r in clean.items()} == {c: r["predictions"] for c, r in poisoned.items()}
    assert set(clean) == {"en", "ar"} and clean["ar"]["learning_rate"] == 1e-3


def test_the_swap_routes_each_language_through_its_own_layers(finished):
    study, _, _, _ = finished
    models, tokenizer = _models(study)
    model = models["joint_all_ls"]
    rng = np.random.RandomState(0)
    for variable in [v for v in model.weights if "adapter" in v.path]:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(variable.dtype))
    task = study.tasks["revelation_period"]
    examples = task.test["ar"][:12]
    texts = [e.text for e in examples]
    swapped = sentence_embeddings(model, tokenizer, texts, "ar", 16)
    english = sentence_embeddings(model, tokenizer, texts, "en", 16)
    # The model called directly, at the full length, with ar's id and with en's.
    import tensorflow as tf

    inputs = tokenizer.encode(tf.constant(texts), 16)
    for code, embeddings in (("ar", swapped), ("en", english)):
        direct = model({**inputs, "language_ids": tf.fill([len(texts)], model.language_vocabulary.index(code))},
                       training=False, outputs=("embedding",))["embedding"].numpy()
        np.testing.assert_allclose(embeddings, direct, rtol=1e-4, atol=1e-5)
    assert not np.allclose(swapped, english, atol=1e-3)
    # The protocol's rows: the swap row predicts from ar's features, the no-swap row from en's.
    rows = study.zero_shot_rows({"reference": models["reference"], "joint_all_ls": model}, tokenizer, task, 0)
    from tf_metaling.study.evaluation.linear_head import LinearHead

    english_examples = study._english_examples(task, 0)
    targets = [task.label_names.index(e.label) for e in english_examples]
    head = LinearHead([0.1, 1.0], 2, 0).fit(
        centered(sentence_embeddings(model, tokenizer, [e.text for e in english_examples], "en", 16)), targets)
    test = task.test["ar"]
    for row, code in (("joint_all_ls", "ar"), ("joint_all_ls:no_swap", "en")):
        expected = head.predict(centered(sentence_embeddings(model, tokenizer, [e.text for e in test], code, 16)))
        assert rows[row]["ar"]["predictions"] == expected.tolist()
    assert rows["joint_all_ls"]["ar"]["predictions"] != rows["joint_all_ls:no_swap"]["ar"]["predictions"]


def test_the_frozen_probe_equals_scikit_learns_logistic_regression_on_the_same_features(finished):
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    study, collected, _, _ = finished
    models, tokenizer = _models(study)
    model = models["reference"]
    task = study.tasks["revelation_period"]
    english = study._english_examples(task, 0)

    def mean_pooled(examples, code):  # the frozen encoder's mean over real tokens, computed here
        inputs = tokenizer.encode(tf.constant([e.text for e in examples]), 16)
        sequence = model.encoder({**inputs, "language_ids": tf.fill([len(examples)], 0)}, training=False).numpy()
        mask = inputs["padding_mask"].numpy()[..., None].astype(np.float64)
        pooled = (sequence * mask).sum(1) / mask.sum(1)
        return pooled - pooled.mean(0)  # centred per language, as the study's rows are

    targets = np.array([task.label_names.index(e.label) for e in english])
    features = mean_pooled(english, "en")
    chosen = collected["seeds"][0]["classification"]["revelation_period"]["probe"]["ar"]["chosen_c"]
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(C=chosen, class_weight="balanced", max_iter=5000).fit(
        scaler.transform(features), targets)
    test = task.test["ar"]
    expected = reference.predict(scaler.transform(mean_pooled(test, "ar")))
    probe = collected["seeds"][0]["classification"]["revelation_period"]["probe"]["ar"]
    agreement = np.mean(np.asarray(probe["predictions"]) == expected)
    assert agreement >= 0.99, agreement
    assert probe["accuracy"] == pytest.approx(np.mean(expected == [task.label_names.index(e.label) for e in test]),
                                              abs=0.01)


def test_a_rerun_skips_every_finished_stage(finished, setting):
    study, collected, _, _ = finished
    again, log = _study(setting, study.output_dir)
    assert again.run()["seeds"] == collected["seeds"]
    assert "evaluated earlier, skipped" in log.getvalue()


def test_tagging_rows_put_the_pretrained_encoder_beside_scratch(setting, tmp_path, monkeypatch):
    from tf_metaling.data.tasks import TaggingTask
    from tf_metaling.data.token_tagging import TaggedSentence

    def sentence(i):
        words = fixtures.MULTILINGUAL_TEXTS[i % 5].split()
        return TaggedSentence(tuple(words), tuple("LONG" if len(w) > 4 else "SHORT" for w in words), "en")

    task = TaggingTask("pos", "accuracy", ("LONG", "SHORT"), {"en": [sentence(i) for i in range(20)]},
                       {"en": [sentence(i) for i in range(5)]})
    study, _ = _study(setting, str(tmp_path), tagging_steps=4)
    study.config.evaluation.tagging_batch_size = 4
    monkeypatch.setattr(study.corpus, "tagging_tasks", lambda: {"pos": task})
    rows = study.tagging_rows(0)
    assert set(rows["pos"]) == {"pretrained", "scratch"}
    for row in rows["pos"].values():
        assert 0.0 <= row["en"]["value"] <= 1.0 and row["en"]["baseline"] == pytest.approx(task.baseline("en"))
    # The pretrained tagger kept the encoder's weights; scratch's differ.
    pretrained_tagger = checkpoints.restore_model(os.path.join(study.run_dir("tagging-pretrained", 0), "pos-en"))
    scratch_tagger = checkpoints.restore_model(os.path.join(study.run_dir("tagging-scratch", 0), "pos-en"))
    from tf_metaling.models import pretrained

    original = pretrained.load_pretrained_encoder(setting[1], ["en", "ar"], language_specific="none")
    np.testing.assert_allclose(pretrained_tagger.encoder.token_embeddings.numpy(), original.token_embeddings.numpy())
    assert not np.allclose(scratch_tagger.encoder.token_embeddings.numpy(), original.token_embeddings.numpy())


def test_models_sharing_frozen_blocks_share_their_hidden_states_and_only_those(finished):
    from tf_metaling.study.evaluation.embeddings import SharedPrefix

    study, _, _, _ = finished
    models, tokenizer = _models(study)
    for variable in [v for v in models["joint_all_ls"].weights if "adapter" in v.path]:
        variable.assign(np.random.RandomState(1).normal(scale=0.5, size=variable.shape).astype(variable.dtype))
    texts = [e.text for e in study.tasks["revelation_period"].test["ar"][:40]]
    cache = SharedPrefix()
    for name in ("reference", "joint_all_ls"):  # the second is served from the first's prefix
        for code in ("ar", "en"):
            full = sentence_embeddings(models[name], tokenizer, texts, code, 16)
            np.testing.assert_allclose(sentence_embeddings(models[name], tokenizer, texts, code, 16,
                                                           shared_prefix=cache), full, rtol=1e-4, atol=1e-5)
    assert len(cache.entries) == 1 and models["joint_all_ls"].encoder.first_language_specific_block == 1
    # Other weights below the LS block: a prefix of its own, not the cached one.
    other = models["joint_all_meta_ls"]
    block = other.encoder.blocks[0]
    block.weights[0].assign(block.weights[0] + 0.1)
    np.testing.assert_allclose(sentence_embeddings(other, tokenizer, texts, "ar", 16, shared_prefix=cache),
                               sentence_embeddings(other, tokenizer, texts, "ar", 16), rtol=1e-4, atol=1e-5)
    assert len(cache.entries) == 2
