"""The synthetic control: exact shares of ids, exact ground truth of its tasks, and its quick form."""

import io
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling import configs
from tf_metaling.data.corpora.synthetic_corpus import SyntheticCorpus, parse_language_spec
from tf_metaling.data.pipelines import MlmPipelineConfig, language_examples
from tf_metaling.data.synthetic import SyntheticTokenizer
from tf_metaling.tokenizers import NUM_SPECIAL_TOKENS


def _corpus(spec, **kwargs):
    return SyntheticCorpus(["en", "lo"], vocab_size=200, specs=["en", spec], train_per_language=100, **kwargs)


def _pipeline_ids(corpus, code, sentences):
    """Unmasked token ids as the pretraining pipeline yields them for `code`, one row per sentence."""
    config = MlmPipelineConfig(sequence_length=32, packing="sentence", batch_size=8)
    stream = language_examples(sentences, code, corpus.languages.index(code), corpus.fixed_tokenizer(), config,
                               shuffle=False, repeat=False, transform=corpus.language_transforms[code])
    return np.stack([example["token_ids"].numpy() for example in stream])


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_the_sweeps_languages_share_exactly_the_stated_fraction_of_ids(share):
    corpus = _corpus(f"lo:share={share}")
    synthetic = corpus.synthetic
    span = synthetic.span
    kept = synthetic.kept_ids("lo")
    assert kept[NUM_SPECIAL_TOKENS:].sum() == round(share * span)  # of the base's regular ids, exactly
    assert abs(synthetic.shared_fraction("lo") - share) <= 0.5 / span
    sentences = corpus.text_sources("valid")["en"]
    assert sentences == corpus.text_sources("valid")["lo"]  # the same content in both languages
    en, lo = _pipeline_ids(corpus, "en", sentences), _pipeline_ids(corpus, "lo", sentences)
    regular = en >= NUM_SPECIAL_TOKENS
    stays = kept[en]
    # Every id of lo is en's id where en's id is shared (or special), else en's id moved by one range.
    np.testing.assert_array_equal(lo[stays], en[stays])
    np.testing.assert_array_equal(lo[~stays], en[~stays] + span)
    # Which regular ids the two languages use in common is exactly the shared set (of those that occur).
    used = set(en[regular].tolist())
    common = used & set(lo[lo >= NUM_SPECIAL_TOKENS].tolist())
    assert common == {i for i in used if kept[i]}
    if share == 0.0:
        assert common == set()
    if share == 1.0:
        assert common == used


def test_shares_nest_and_the_reversed_case_keeps_every_id():
    quarter, half = _corpus("lo:share=0.25").synthetic.kept_ids("lo"), _corpus("lo:share=0.5").synthetic.kept_ids("lo")
    assert np.all(half[quarter])  # the 25% shared ids are among the 50%
    reversed_corpus = _corpus("lo:share=1,reverse")
    sentence = ["the small cat sees the dogs"]
    en = _pipeline_ids(reversed_corpus, "en", sentence)[0]
    lo = _pipeline_ids(reversed_corpus, "lo", sentence)[0]
    assert sorted(en.tolist()) == sorted(lo.tolist()) and en.tolist() != lo.tolist()  # same words, other order


def test_a_mixed_batch_transformed_in_the_graph_matches_each_languages_own_transform():
    # What an exported signature applies (transform_by_language) equals the pipeline's per-language transform.
    from tf_metaling.data.synthetic import SyntheticLanguages

    corpus = _corpus("lo:share=0.5,reverse")
    tokenizer, synthetic = corpus.fixed_tokenizer(), corpus.synthetic
    texts = tf.constant(["the small cat sees the dogs", "a tall child likes the birds"])
    pieces = tokenizer.tokenize_words(texts)
    mixed = synthetic.transform_by_language(pieces, tf.constant([1, 0]), ["en", "lo"])
    assert mixed[0].flat_values.numpy().tolist() == corpus.language_transforms["lo"](pieces[:1]).flat_values.numpy().tolist()
    assert mixed[1].flat_values.numpy().tolist() == pieces[1].flat_values.numpy().tolist()
    # The definitions written into a model_dir carry the share.
    again = SyntheticLanguages.from_dict(synthetic.to_dict())
    assert (again.kept_ids("lo") == synthetic.kept_ids("lo")).all()


def test_the_resource_sweep_gives_the_stated_fraction_of_the_training_text():
    full, tenth = _corpus("lo").text_sources("train"), _corpus("lo:resource=0.1").text_sources("train")
    assert len(full["lo"]) == len(full["en"]) == 100
    assert len(tenth["lo"]) == 10 and tenth["en"] == full["en"]
    assert not set(full["en"]) & set(full["lo"]) or full["en"] != full["lo"]  # each language its own sentences
    assert _corpus("lo:resource=0.1").groups == {"high": ["en"], "low": ["lo"]}


def test_bad_specs_name_the_spec_and_what_is_wrong():
    with pytest.raises(ValueError, match=r"'lo:share=2'.*share=2.0, expected a fraction"):
        SyntheticCorpus(["en", "lo"], specs=["en", "lo:share=2"], train_per_language=20)
    with pytest.raises(ValueError, match=r"'lo:size=3': unknown option 'size=3'"):
        parse_language_spec("lo:size=3", 1)
    with pytest.raises(ValueError, match="the first language is the source text itself"):
        parse_language_spec("en:reverse", 0)
    with pytest.raises(ValueError, match=r"data.languages \['xx'\] are not among the synthetic languages"):
        SyntheticCorpus(["en", "xx"], specs=["en", "lo"], train_per_language=20)


def _random_model(corpus, seed=0):
    from official.modeling import hyperparams

    from tf_metaling.training.experiment import build_model

    config = hyperparams.override_params_dict(configs.get_experiment("tiny"), {
        "data": {"languages": ["en", "lo"]}, "model": {"language_specific": "none"}}, is_strict=True)
    tf.keras.utils.set_random_seed(seed)
    return build_model(config, corpus.language_vocabulary(), corpus.synthetic.vocab_size)


def test_retrieval_between_a_language_and_its_exact_copy_scores_one_for_any_model():
    from tf_metaling.study.evaluation.retrieval import retrieval_records

    copy = _corpus("lo:share=1")
    model = _random_model(copy)  # random weights: a check of the evaluation, not of a model
    tokenizer = SyntheticTokenizer(copy.fixed_tokenizer(), copy.synthetic, model.language_vocabulary.codes)
    record = retrieval_records(model, tokenizer, copy, 32, "en", max_pairs=100)["lo"]
    assert record["value"] == 1.0 and record["baseline"] == pytest.approx(1 / 100)
    # With no shared id the same random model no longer finds every translation: the transform is applied.
    disjoint = _corpus("lo:share=0")
    tokenizer = SyntheticTokenizer(disjoint.fixed_tokenizer(), disjoint.synthetic, model.language_vocabulary.codes)
    assert retrieval_records(model, tokenizer, disjoint, 32, "en", max_pairs=100)["lo"]["value"] < 1.0


def test_the_classification_labels_come_from_the_source_sentence_and_agree_in_every_language():
    corpus = _corpus("lo:share=0,reverse")
    task = corpus.classification_tasks("en")["contains_word"]
    word = corpus.task_word
    for code in ("en", "lo"):
        labels = [e.label for e in task.test[code]]
        assert labels == [("present" if word in e.text.split() else "absent") for e in task.test["en"]]
    counts = task.label_counts(task.train)
    assert min(counts.values()) / max(counts.values()) > 0.5  # the word is in about half the sentences


def test_the_default_sweep_runs_each_variant_where_it_is_stated_and_mono_once_per_resource():
    from tf_metaling.study.plan import Condition, control_plan, mono_source

    config = configs.get_study("study_control")
    plan = control_plan(config)
    variants = {condition: tuple(study.variants) for condition, study, _ in plan}
    base = Condition(0.0, 1.0)  # the default's base condition: equal text, no shared ids
    assert set(variants) == {base, Condition(0.5, 1.0), Condition(1.0, 1.0), Condition(1.0, 1.0, reverse=True),
                             Condition(0.0, 0.1), Condition(0.0, 0.01)}
    assert variants[base] == ("mono", "joint_all", "joint_all_ls", "joint_all_meta_ls")
    # Mono lo runs once per resource level, Mono en once (in the base condition); the share sweep
    # borrows both from the base condition.
    assert variants[Condition(0.0, 0.1)] == variants[Condition(0.0, 0.01)] == ("mono", "joint_all")
    mono = {condition: languages for condition, _, languages in plan}
    assert mono[base] == ("en", "lo") and mono[Condition(0.0, 0.1)] == mono[Condition(0.0, 0.01)] == ("lo",)
    assert mono_source(config, Condition(0.0, 0.01), "en") == base
    assert mono_source(config, Condition(0.0, 0.01), "lo") == Condition(0.0, 0.01)
    assert mono_source(config, Condition(1.0, 1.0, reverse=True), "lo") == base
    for condition in (Condition(0.5, 1.0), Condition(1.0, 1.0), Condition(1.0, 1.0, reverse=True)):
        assert variants[condition] == ("joint_all",)
    # Every Mono source comes before the conditions that borrow from it.
    order = list(variants)
    assert order.index(base) < min(order.index(c) for c in variants if c != base)
    # Each condition is a study of its own: the derived language as the condition says.
    study = dict((c, s) for c, s, _ in plan)[Condition(1.0, 1.0, reverse=True)]
    assert study.run.data.synthetic_languages == ["en", "lo:share=1,resource=1,reverse"]
    assert study.name == "study_control/share1-reversed-resource1" and not study.control.enabled
    config.control.treatments_in = "all"
    everywhere = {condition: tuple(study.variants) for condition, study, _ in control_plan(config)}
    assert everywhere[Condition(1.0, 1.0)] == ("joint_all", "joint_all_ls", "joint_all_meta_ls")


def test_a_condition_that_is_only_a_mono_source_trains_just_those_mono_runs():
    from tf_metaling.study.plan import Condition, control_plan, count_runs

    config = configs.get_study("study_control_surgery")  # resource 1/100 alone; en's Mono from the base condition
    plan = {condition: (tuple(study.variants), languages) for condition, study, languages in control_plan(config)}
    assert list(plan) == [Condition(0.0, 1.0), Condition(0.0, 0.01)]
    assert plan[Condition(0.0, 1.0)] == (("mono",), ("en",))
    assert plan[Condition(0.0, 0.01)] == (tuple(config.variants), ("lo",))
    assert count_runs(config) == (1 + 1 + 6) * 6


def test_quick_control_writes_the_table_the_curves_and_a_verdict_per_claim(tmp_path, monkeypatch):
    from absl import flags

    from tf_metaling.study.plan import control_conditions
    from tf_metaling.study.synthetic_control import SyntheticControl
    from trainers import analyze

    log = io.StringIO()
    config = configs.get_study("study_control_quick")
    config.control.treatments_in = "base"  # 6 runs: the copy condition trains JointAll alone
    control = SyntheticControl(config, str(tmp_path / "control"), log=log)
    control.report(control.run())
    summary = open(tmp_path / "control" / "control.md", encoding="utf-8").read()
    for claim in "abcdef":
        assert f"- ({claim}) " in summary
    # Six steps converge nowhere: every comparison is withheld, and the tally says so.
    flat = " ".join(summary.split())
    assert "(a) negative interference hits high-resource languages: no verdict: 2 of 2 runs did not converge" in flat
    assert re.search(r"Across the 2 conditions, no verdict: every comparison draws on a run that did not "
                     r"converge \(\d+ withheld\)", flat)
    base, copy_condition = control_conditions(control.config)
    assert os.path.exists(tmp_path / "control" / base.name / "curves.png")
    table = open(tmp_path / "control" / base.name / "table.md", encoding="utf-8").read()
    assert "Convergence of the runs" in table and "Retrieval accuracy@1, X -> en" in table
    # The share-1.0 condition trains no Mono runs of its own: it reads the base condition's.
    assert not os.path.exists(tmp_path / "control" / copy_condition.name / "runs" / "mono-lo")
    results = {c: json.load(open(tmp_path / "control" / c.name / "results.json", encoding="utf-8"))
               for c in (base, copy_condition)}
    assert results[copy_condition]["records"]["mlm_loss"]["mono"] == results[base]["records"]["mlm_loss"]["mono"]
    assert "share 1, resource 0.1" in summary and "share 0, resource 0.1" in summary
    # The analysis command works on a control model, with the study's results for per-variant
    # deltas (its main, in this process, on flags parsed from its command line).
    run_dir = tmp_path / "control" / base.name / "runs" / "joint_all" / "seed0"
    values = flags.FlagValues()
    analyze.define_flags(values)
    values(["analyze", f"--model_dir={run_dir}", f"--output_dir={tmp_path / 'analysis'}",
            f"--results={tmp_path / 'control' / base.name / 'results.json'}"])
    monkeypatch.setattr(analyze, "FLAGS", values)
    analyze.main([])
    report = open(tmp_path / "analysis" / "report.md", encoding="utf-8").read()
    assert "lo" in report and "en" in report


def test_the_capacity_curve_alone_with_the_learning_rate_halved_when_the_width_doubles():
    from official.modeling import hyperparams

    from tf_metaling.study.plan import Condition, PlannedRun, control_plan, learning_rate, run_config

    config = configs.get_study("study_control")
    config.control.sweeps, config.control.widths, config.control.width_learning_rate = False, [16, 64], "scaled"
    plan = control_plan(config)
    assert [condition for condition, _, _ in plan] == [Condition(0.0, 1.0, width=16), Condition(0.0, 1.0, width=64)]
    runs = {c.width: run_config(s, ["en", "lo"], PlannedRun("joint_all", None, 0), "") for c, s, _ in plan}
    # study_control: d=32 at 5e-3.
    assert {w: (c.model.hidden_dim, c.trainer.learning_rate) for w, c in runs.items()} == {
        16: (16, pytest.approx(1e-2)), 64: (64, pytest.approx(2.5e-3))}
    assert learning_rate(config) == pytest.approx(5e-3)
    # "same" keeps the run config's rate at every width; a user's override is the base of the scaling.
    config.control.width_learning_rate = "same"
    assert [s.run.trainer.learning_rate for _, s, _ in control_plan(config)] == [pytest.approx(5e-3)] * 2
    config.control.width_learning_rate = "scaled"
    config = hyperparams.override_params_dict(config, "run.trainer.learning_rate=4e-3", is_strict=True)
    assert [s.run.trainer.learning_rate for _, s, _ in control_plan(config)] == [
        pytest.approx(8e-3), pytest.approx(2e-3)]
    config.control.widths = []
    with pytest.raises(ValueError, match="field control.sweeps: no condition to run"):
        configs.validate_study(config)
    config.control.widths, config.control.width_learning_rate = [16], "halved"
    with pytest.raises(ValueError, match="field control.width_learning_rate: 'halved' is not one of"):
        configs.validate_study(config)
