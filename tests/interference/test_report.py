"""The report directory: its files, what the Markdown shows, and all-or-nothing writing."""

import json
import os

import numpy as np
import pytest

from tests.helpers import tiny_model
from tests.interference.fixtures import batches_by_language
from tf_metaling.interference import GradientProbe, language_subnetworks, read_similarity_log, report, write_report
from tf_metaling.interference.variant_deltas import variant_deltas

ALL_FILES = {
    "report.md", "report.json", "gradient_similarity.png", "gradient_similarity_by_group.png",
    "similarity_over_training.png", "mask_overlap.png", "mask_overlap_by_group.png", "variant_deltas.png",
}
RESULTS = {
    "mono": {"en": 10.0, "fr": [20.0, 22.0, 21.0], "sw": 30.0},
    "joint_all": {"en": 11.0, "fr": 19.0, "sw": 33.0},
    "joint_all_ls": {"en": {"mean": 10.5, "std": 0.2}, "fr": 20.0, "sw": 29.0},
}


@pytest.fixture(scope="module")
def measurements(tmp_path_factory):
    model = tiny_model("adapter")
    batches = batches_by_language()
    log_dir = str(tmp_path_factory.mktemp("probe"))
    probe = GradientProbe(model, batches, log_dir=log_dir, every_n_steps=1, image=False)
    for step in (0, 5, 10):
        probe.record(step)
        for variable in model.trainable_variables:  # move the model so the curves change
            variable.assign(variable.numpy() * 0.9)
    subnetworks = language_subnetworks(model, batches, keep_fraction=0.2)
    return probe.last, probe.log_path, subnetworks


@pytest.fixture(scope="module")
def full_report(measurements, tmp_path_factory):
    similarity, log_path, subnetworks = measurements
    output = str(tmp_path_factory.mktemp("reports") / "report")
    write_report(output, similarity=similarity, similarity_history=log_path, subnetworks=subnetworks,
                 results=RESULTS, high_resource=["en", "fr"], low_resource=["sw"], context={"model": "tiny"})
    return output


def test_report_directory_contains_the_listed_files(full_report):
    assert set(os.listdir(full_report)) == ALL_FILES
    with open(os.path.join(full_report, "report.json"), encoding="utf-8") as file:
        data = json.load(file)
    assert set(data["files"]) == ALL_FILES
    for name in ALL_FILES - {"report.md", "report.json"}:
        with open(os.path.join(full_report, name), "rb") as file:
            content = file.read()
        assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 5000, name
    # Nothing left beside it: the staging directory was renamed into place.
    assert os.listdir(os.path.dirname(full_report)) == ["report"]


def test_markdown_embeds_figures_and_tables(full_report, measurements):
    similarity, _, subnetworks = measurements
    with open(os.path.join(full_report, "report.md"), encoding="utf-8") as file:
        markdown = file.read()
    for name in ALL_FILES - {"report.md", "report.json"}:
        assert f"]({name})" in markdown, name
    for heading in ("## Summary", "## 1. Gradient conflict", "## 2. Gradient similarity over training",
                    "## 3. Language-specific parameters", "## 4. Variants against the mono baseline"):
        assert heading in markdown
    # The numbers in the tables are the measured ones.
    en_row = "| en | " + " | ".join(f"{v:.2f}" for v in similarity.overall[0]) + " |"
    assert en_row in markdown
    assert f"{subnetworks.unique_share():.1%} of the kept weights are used by one language only" in markdown
    assert "| joint_all | 11.000 (+10.0%) | 19.000 (-9.5%) | 33.000 (+10.0%) |" in markdown
    assert "**joint_all vs mono (perplexity):** worse for 2 of 3 languages (en, sw)" in markdown
    assert "Not in this report" not in markdown


def test_report_json_holds_the_numbers(full_report, measurements):
    similarity, log_path, _ = measurements
    with open(os.path.join(full_report, "report.json"), encoding="utf-8") as file:
        data = json.load(file)
    np.testing.assert_allclose(np.array(data["gradient_similarity"]["overall"], float), similarity.overall)
    history = read_similarity_log(log_path)
    assert data["similarity_over_training"]["steps"] == [0, 5, 10]
    np.testing.assert_allclose(data["similarity_over_training"]["pairs"]["en-sw"], [r.pair("en", "sw") for r in history])
    assert data["variant_deltas"]["variants"]["joint_all"]["sw"]["worse_than_baseline"] is True
    assert data["context"] == {"model": "tiny"}


def test_partial_report_lists_what_is_missing(tmp_path):
    output = str(tmp_path / "deltas_only")
    write_report(output, results=RESULTS, low_resource=["sw"])
    assert set(os.listdir(output)) == {"report.md", "report.json", "variant_deltas.png"}
    with open(os.path.join(output, "report.md"), encoding="utf-8") as file:
        assert "Not in this report (not given): gradient similarity" in file.read()
    with pytest.raises(ValueError, match="nothing to report"):
        write_report(str(tmp_path / "empty"))


def test_failed_report_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    output = str(tmp_path / "report")
    write_report(output, results=RESULTS)
    before = set(os.listdir(output))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report.report_plots, "plot_variant_deltas", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(output, results=RESULTS)
    assert set(os.listdir(output)) == before
    assert os.listdir(tmp_path) == ["report"]  # no staging directory left behind


def test_variant_deltas_from_seeds_and_for_accuracy():
    deltas = variant_deltas(RESULTS, high_resource=["en", "fr"], low_resource=["sw"])
    fr = deltas.languages.index("fr")
    assert deltas.baseline_mean[fr] == pytest.approx(21.0) and deltas.baseline_std[fr] == pytest.approx(1.0)
    assert deltas.delta[0, fr] == pytest.approx(-2.0)
    assert deltas.relative[0, fr] == pytest.approx(-200 / 21)
    assert deltas.group_mean("low")[0] == pytest.approx(10.0)
    accuracy = variant_deltas({"mono": {"en": 0.5}, "joint_all": {"en": 0.4}}, metric="accuracy", lower_is_better=False)
    assert accuracy.harm[0, 0] == pytest.approx(20.0)  # a fall in accuracy is worse
    with pytest.raises(KeyError, match="baseline variant 'mono' is missing"):
        variant_deltas({"joint_all": {"en": 1.0}})
    with pytest.raises(TypeError, match=r"results\['joint_all'\]\['en'\]"):
        variant_deltas({"mono": {"en": 1.0}, "joint_all": {"en": "high"}})
