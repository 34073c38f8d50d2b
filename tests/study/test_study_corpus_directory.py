"""The comparison study on a user's corpus directory: end to end, and every bad input stopped up front."""

import collections
import io
import json
import os

import pytest

from tf_metaling.errors import DataFormatError
from tf_metaling.study.comparison_study import ComparisonStudy

from ..data.corpus_directory_fixtures import upos, write, write_corpus_directory
from ..helpers import study_config


def _plan(root, languages=()):
    return study_config("study_tiny", {
        "variants": ["mono", "joint_all"], "seeds": [0],
        "evaluation": {"retrieval_pairs": 30, "classification_train": 60, "tagging_steps": 6},
        "run": {"data": {"corpus": "directory", "corpus_dir": os.path.abspath(root), "languages": list(languages)},
                "trainer": {"train_steps": 6, "checkpoint_interval": 6, "eval_interval": 6}}})


@pytest.mark.slow
def test_study_runs_end_to_end_on_a_corpus_directory(tmp_path):
    root = write_corpus_directory(str(tmp_path / "corpus"), languages=("en", "sw"), text_lines=120,
                                  task_sentences=40, ner=False, pos_languages=("sw",))
    output_dir = str(tmp_path / "study")
    log = io.StringIO()
    study = ComparisonStudy(_plan(root), output_dir, log=log)
    assert study.languages == ["en", "sw"] and set(study.tasks.tagging) == {"pos"}
    report = study.report(study.run())
    with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as file:
        results = json.load(file)
    records = results["records"]
    assert set(records) == {"mlm_loss", "mlm_accuracy", "retrieval", "tagging:pos"}
    # Retrieval: sw -> en only (Mono models do not know the pivot), baseline 1/N of the 30 pairs.
    assert set(records["retrieval"]) == {"joint_all"}
    assert records["retrieval"]["joint_all"]["sw"]["0"]["baseline"] == pytest.approx(1 / 30)
    # POS: every variant that knows the language, plus the from-scratch tagger, beside the majority tag.
    assert set(records["tagging:pos"]) == {"mono", "joint_all", "scratch"}
    for variant in ("mono", "joint_all", "scratch"):
        assert set(records["tagging:pos"][variant]) == {"sw"}
    task = study.tasks.tagging["pos"]
    for code in ("sw",):
        tags = [upos(word) for sentence in task.test[code] for word in sentence.words]
        majority = collections.Counter(upos(w) for s in task.train[code] for w in s.words).most_common(1)[0][0]
        expected = sum(tag == majority for tag in tags) / len(tags)
        record = records["tagging:pos"]["joint_all"][code]["0"]
        assert record["baseline"] == pytest.approx(expected)
        assert sum(d for _, d in record["examples"]) == len(tags)  # every test word scored once
    # The printed tables: rows per language, a baseline column, CIs, and no "± 0" of a single seed.
    with open(report["table"], encoding="utf-8") as file:
        table = file.read()
    pos_table = table[table.index("pos: UPOS accuracy"):]
    header = next(line for line in pos_table.splitlines() if line.startswith("| lang"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["lang", "base", "Scratch", "Mono", "JointAll"]
    rows = [line for line in pos_table.splitlines() if line.startswith("| en ") or line.startswith("| sw ")][:2]
    assert len(rows) == 1 and rows[0].startswith("| sw ") and "±" in rows[0]  # en has no POS data: no row
    assert "percentile bootstrap over test examples" in table
    assert "-[1]: a Mono model does not know the pivot language" in table  # Mono column of retrieval
    # Folded at 100 columns, but for the lines that name this test's files (a path does not fold).
    assert [line for line in table.splitlines() if len(line) > 100 and str(tmp_path) not in line] == []
    assert "done in" in log.getvalue() and "to go" in log.getvalue()


def _expect_error(tmp_path, root, error, match, languages=()):
    output_dir = tmp_path / "study"
    with pytest.raises(error, match=match):
        ComparisonStudy(_plan(str(root), languages), str(output_dir), log=io.StringIO())
    assert not output_dir.exists()  # nothing written


def test_missing_language_names_the_file(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    _expect_error(tmp_path, root, FileNotFoundError, r"c/text/fr\.txt: missing; language 'fr' was requested",
                  languages=("en", "fr"))


def test_empty_text_file_names_the_file(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    write(os.path.join(root, "text", "sw.txt"), "\n\n")
    _expect_error(tmp_path, root, DataFormatError, r"c/text/sw\.txt: empty file")


def test_invalid_utf8_names_file_and_line(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    with open(os.path.join(root, "text", "sw.txt"), "ab") as file:
        file.write(b"ok line\n\xff\xfe broken\n")
    _expect_error(tmp_path, root, DataFormatError, r"c/text/sw\.txt:42: ")


def test_malformed_conllu_line_names_file_and_line(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    path = os.path.join(root, "pos", "en.conllu")
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    lines[2] = "1\tthe\t_\tDET\t_"  # 5 columns instead of 10
    write(path, "\n".join(lines) + "\n")
    _expect_error(tmp_path, root, DataFormatError, r"c/pos/en\.conllu:3: ")


def test_malformed_parallel_line_names_file_and_line(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    with open(os.path.join(root, "parallel", "sw-en.tsv"), "a", encoding="utf-8") as file:
        file.write("only one field\n")
    _expect_error(tmp_path, root, DataFormatError, r"c/parallel/sw-en\.tsv:41: expected 2 non-empty")


def test_test_tag_missing_from_training_names_file_and_line(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    os.remove(os.path.join(root, "pos", "sw.conllu"))
    write(os.path.join(root, "pos", "sw.train.conllu"), "1\tthe\t_\tDET\t_\t_\t_\t_\t_\t_\n")
    write(os.path.join(root, "pos", "sw.test.conllu"),
          "# text = the cat\n1\tthe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tcat\t_\tNOUN\t_\t_\t_\t_\t_\t_\n")
    _expect_error(tmp_path, root, DataFormatError,
                  r"c/pos/sw\.test\.conllu:3: tag 'NOUN' \(word 'cat'\) never occurs in the training data")


def test_task_file_of_a_language_without_text_is_refused(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    write(os.path.join(root, "pos", "fr.conllu"), "1\tle\t_\tDET\t_\t_\t_\t_\t_\t_\n")
    _expect_error(tmp_path, root, DataFormatError, r"c/pos/fr\.conllu: language 'fr' has no text")


def test_unexpected_file_name_is_refused(tmp_path):
    root = write_corpus_directory(str(tmp_path / "c"), text_lines=40, task_sentences=20)
    write(os.path.join(root, "text", "README"), "notes\n")
    _expect_error(tmp_path, root, DataFormatError, r"c/text/README: unexpected file name")


def test_directory_languages_and_groups(tmp_path):
    from tf_metaling.data.corpora.directory_corpus import DirectoryCorpus

    root = write_corpus_directory(str(tmp_path / "c"), languages=("en", "sw", "de"), text_lines=200,
                                  task_sentences=20)
    write(os.path.join(root, "text", "de.txt"), "\n".join(f"satz {i} ." for i in range(40)) + "\n")
    corpus = DirectoryCorpus(root)
    assert corpus.languages == ("en", "sw", "de")  # high first, then low
    assert corpus.groups == {"high": ["en", "sw"], "low": ["de"]}  # de: 32 training lines < 25% of 160
    train, valid, test = (corpus.text_sources(s)["en"] for s in ("train", "valid", "test"))
    assert len(train) + len(valid) + len(test) == 200 and min(len(valid), len(test)) > 0
    assert corpus.text_sources("train") == DirectoryCorpus(root).text_sources("train")  # deterministic
    assert set(corpus.retrieval_sets("en")) == {"sw", "de"}
    assert set(corpus.tagging_tasks()) == {"pos", "ner"}
