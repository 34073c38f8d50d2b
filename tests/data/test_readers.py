"""Readers on small files written here: correct content, and file:line errors."""

import gzip

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.iob_reader import IobReader
from tf_metaling.data.nli_reader import NliReader
from tf_metaling.data.sentence_classification import (
    ClassificationExample,
    classification_dataset,
    label_id,
)
from tf_metaling.data.text_reader import TextLineReader, count_text_lines, text_line_dataset
from tf_metaling.data.tfrecord_io import example_tfrecord_dataset, write_example_tfrecord
from tf_metaling.data.token_tagging import (
    PANX_TAGS,
    UPOS_TAGS,
    TaggedSentence,
    encode_tagged_words,
    tagging_dataset,
)
from tf_metaling.errors import DataFormatError
from tf_metaling.languages import LanguageVocabulary, UnknownLanguageError
from tf_metaling.tokenizers import CLS_ID, SEP_ID, WordPieceTokenizer

LANGUAGES = LanguageVocabulary(["en", "de", "fr"])

TRICKY_CONLLU = """\
# newdoc id = doc1
# sent_id = s1
# text = Im Haus wohnen wir.
1-2\tIm\t_\t_\t_\t_\t_\t_\t_\t_
1\tIn\tin\tADP\tAPPR\t_\t3\tcase\t_\t_
2\tdem\tder\tDET\tART\t_\t3\tdet\t_\t_
3\tHaus\tHaus\tNOUN\tNN\t_\t4\tobl\t_\t_
4\twohnen\twohnen\tVERB\tVVFIN\t_\t0\troot\t_\t_
4.1\tleben\tleben\tVERB\t_\t_\t_\t_\t0:root\t_
5\twir\twir\tPRON\tPPER\t_\t4\tnsubj\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t$.\t_\t4\tpunct\t_\t_

# sent_id = s2
1\tJa\tja\tINTJ\tITJ\t_\t0\troot\t_\t_
"""


def _write(tmp_path, name, content, binary=False):
    path = tmp_path / name
    if binary:
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------ plain text
def test_text_reader_streams_gzip_and_counts_blank_lines(tmp_path):
    path = tmp_path / "en.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("first line\n\n  second line  \r\n\nthird\n")
    reader = TextLineReader(str(path), "en", languages=LANGUAGES)
    assert list(reader) == ["first line", "second line", "third"]
    assert reader.stats == {"lines": 5, "text_lines": 3, "blank_lines": 2}
    assert count_text_lines(str(path)) == 3


def test_text_reader_invalid_utf8_names_file_line_and_skip_counts(tmp_path):
    path = _write(tmp_path, "de.txt", b"gut\nschl\xe4gt\nok\n", binary=True)
    with pytest.raises(
        DataFormatError, match=r"de\.txt:2: invalid UTF-8 \(byte 0xe4 at byte 4"
    ) as error:
        list(TextLineReader(path, "de"))
    assert error.value.language == "de" and error.value.line == 2
    reader = TextLineReader(path, "de", on_error="skip")
    assert list(reader) == ["gut", "ok"]
    assert reader.report.total == 1 and "de.txt:2" in reader.report.examples[0]


def test_text_reader_empty_file_and_unknown_language(tmp_path):
    path = _write(tmp_path, "empty.txt", "\n\n")
    with pytest.raises(DataFormatError, match="empty.txt: empty file"):
        list(TextLineReader(path, "en"))
    with pytest.raises(UnknownLanguageError, match="'xx'"):
        TextLineReader(path, "xx", languages=LANGUAGES)


def test_text_line_dataset_matches_the_python_reader(tmp_path):
    lines = [f"sentence {i}" if i % 7 else "   " for i in range(1, 1200)]
    lines[100] = "  padded \u00e9t\u00e9  "
    path = tmp_path / "fr.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    read = [t.decode("utf-8") for t in text_line_dataset(str(path), "fr").as_numpy_iterator()]
    assert read == list(TextLineReader(str(path), "fr"))
    assert read[86] == "padded \u00e9t\u00e9" and len(read) == 1200 - 1 - 1199 // 7


def test_text_line_dataset_invalid_utf8_names_file_and_line(tmp_path):
    content = b"".join(b"ok line\n" for _ in range(700)) + b"bad \xc3\x28 line\n" + b"ok\n"
    path = _write(tmp_path, "de.txt", content, binary=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"de\.txt:701: invalid UTF-8"):
        list(text_line_dataset(path, "de"))
    with pytest.raises(DataFormatError, match="empty file"):
        text_line_dataset(_write(tmp_path, "blank.txt", " \n\n"), "de")


# ------------------------------------------------------------------ CoNLL-U
def test_conllu_reads_words_skipping_ranges_and_empty_nodes(tmp_path):
    path = _write(tmp_path, "de.conllu", TRICKY_CONLLU)
    reader = ConlluReader(path, "de", label_names=UPOS_TAGS, languages=LANGUAGES)
    first, second = list(reader)
    assert first.words == ("In", "dem", "Haus", "wohnen", "wir", ".")
    assert first.tags == ("ADP", "DET", "NOUN", "VERB", "PRON", "PUNCT")
    assert first.sentence_id == "s1" and first.text == "Im Haus wohnen wir."
    assert first.source == f"{path}:4"  # its first token line (the 1-2 range)
    assert second.words == ("Ja",) and second.tags == ("INTJ",) and second.source == f"{path}:14"
    assert reader.stats == {
        "sentences": 2, "words": 7, "multiword_tokens": 1, "empty_nodes": 1, "comments": 4,
    }  # fmt: skip
    xpos = list(ConlluReader(path, "de", label_field="XPOS"))
    assert xpos[0].tags[:2] == ("APPR", "ART")


def _line(fields):
    return "\t".join(fields) + "\n"


GOOD = ["1", "Hund", "Hund", "NOUN", "NN", "_", "0", "root", "_", "_"]


@pytest.mark.parametrize(
    "lines, line_number, message",
    [
        ([_line(GOOD[:9])], 2, "wrong number of columns \\(9\\).*expected 10 tab-separated"),
        ([_line(GOOD), _line(["3"] + GOOD[1:])], 3, "word IDs must be consecutive.*expected 2"),
        ([_line(["x"] + GOOD[1:])], 2, "bad ID"),
        ([_line(["2-3"] + GOOD[1:])], 2, "bad multiword token range"),
        ([_line(GOOD), "# late comment\n"], 3, "comment line between word lines"),
        ([_line(GOOD[:3] + ["_"] + GOOD[4:])], 2, "missing UPOS"),
        ([_line(GOOD[:3] + ["NOUNS"] + GOOD[4:])], 2, "unknown UPOS tag.*found 'NOUNS'"),
        ([_line(["1-2"] + GOOD[1:]), _line(GOOD)], 2, "range extends past the last word"),
    ],
)
def test_conllu_malformed_lines_raise_with_file_line(tmp_path, lines, line_number, message):
    path = _write(tmp_path, "bad.conllu", "# sent_id = x\n" + "".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=message) as error:
        list(ConlluReader(path, "de", label_names=UPOS_TAGS))
    assert error.value.line == line_number
    assert str(error.value).startswith(f"{path}:{line_number}:")
    assert error.value.language == "de"


def test_conllu_invalid_utf8_empty_file_and_skip_policy(tmp_path):
    bad = _write(
        tmp_path, "enc.conllu", ("\t".join(GOOD) + "\n").encode() + b"2\t\xff\n\n", binary=True
    )
    with pytest.raises(DataFormatError, match=r"enc\.conllu:2: invalid UTF-8"):
        list(ConlluReader(bad, "de"))
    empty = _write(tmp_path, "empty.conllu", "")
    with pytest.raises(DataFormatError, match="empty file"):
        list(ConlluReader(empty, "de"))
    mixed = _write(
        tmp_path, "mixed.conllu",
        _line(GOOD) + "\n" + _line(GOOD[:9]) + "\n" + _line(GOOD) + _line(["2"] + GOOD[1:]) + "\n",
    )  # fmt: skip
    reader = ConlluReader(mixed, "de", on_error="skip")
    sentences = list(reader)
    assert [len(s.words) for s in sentences] == [1, 2]
    assert reader.report.total == 1
    assert reader.report.counts["wrong number of columns (9)"] == 1
    assert "mixed.conllu:3" in reader.report.examples[0]


# ------------------------------------------------------------------ IOB
PANX = "en:Barack\tB-PER\nen:Obama\tI-PER\nen:visited\tO\nen:Paris\tB-LOC\n\nen:Hi\tO\n"


def test_iob_panx_layout(tmp_path):
    path = _write(tmp_path, "en.panx", PANX)
    sentences = list(IobReader(path, "en", label_names=PANX_TAGS))
    assert sentences[0].words == ("Barack", "Obama", "visited", "Paris")
    assert sentences[0].tags == ("B-PER", "I-PER", "O", "B-LOC")
    assert sentences[1].words == ("Hi",) and sentences[1].source == f"{path}:6"


def test_iob_conll_layout_with_docstart(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    reader = IobReader(_write(tmp_path, "en.conll", text), "en", layout="conll")
    sentences = list(reader)
    assert [s.tags for s in sentences] == [("B-ORG", "O"), ("B-PER",)]
    assert reader.stats["documents"] == 1


@pytest.mark.parametrize(
    "content, layout, line_number, message",
    [
        ("en:Paris\tB-LOC\nde:Berlin\tB-LOC\n", "panx", 2, "language prefix 'de' does not match"),
        ("en:Paris\tLOC\n", "panx", 1, "malformed tag.*expected O, B-TYPE"),
        ("en:Paris B-LOC\n", "panx", 1, "wrong number of columns \\(1\\)"),
        ("Paris\tB-LOC\n", "panx", 1, "missing language prefix"),
        ("EU NNP B-ORG\nrejects O\n", "conll", 2, "expected 3 columns like line 1"),
        ("en:Paris\tB-MISC\n", "panx", 1, "unknown tag"),
    ],
)
def test_iob_malformed_lines_raise_with_file_line(tmp_path, content, layout, line_number, message):
    path = _write(tmp_path, "bad.iob", content)
    with pytest.raises(DataFormatError, match=message) as error:
        list(IobReader(path, "en", layout=layout, label_names=PANX_TAGS))
    assert error.value.line == line_number and f"bad.iob:{line_number}" in str(error.value)


# ------------------------------------------------------------------ XNLI
XNLI_TEST = (
    "language\tgold_label\tsentence1_binary_parse\tsentence1\tsentence2\tpairID\n"
    "en\tentailment\t( x )\tA man sleeps.\tA person rests.\t1\n"
    "de\tcontradiction\t( x )\tEin Mann schläft.\tNiemand schläft.\t2\n"
    "ru\tneutral\t( x )\tМужчина спит.\tОн устал.\t3\n"
)


def test_nli_reader_xnli_layout_with_language_filter(tmp_path):
    reader = NliReader(_write(tmp_path, "xnli.test.tsv", XNLI_TEST), keep_languages=["en", "de"],
                       languages=LANGUAGES)  # fmt: skip
    examples = list(reader)
    assert [(e.language, e.label) for e in examples] == [
        ("en", "entailment"),
        ("de", "contradiction"),
    ]
    assert examples[1].text == "Ein Mann schläft." and examples[1].text_pair == "Niemand schläft."
    assert reader.stats == {"rows": 3, "examples": 2, "other_language": 1}


def test_nli_reader_xnli_mt_layout_and_errors(tmp_path):
    good = "premise\thypo\tlabel\nLe chat dort.\tUn animal dort.\tcontradictory\n"
    examples = list(NliReader(_write(tmp_path, "fr.tsv", good), language="fr"))
    assert examples[0].label == "contradiction" and examples[0].language == "fr"
    bad_label = _write(tmp_path, "bad.tsv", "premise\thypo\tlabel\na\tb\tmaybe\n")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:2: unknown label.*found 'maybe'"):
        list(NliReader(bad_label, language="fr"))
    short = _write(tmp_path, "short.tsv", "premise\thypo\tlabel\nonly two\tfields\n")
    with pytest.raises(DataFormatError, match=r"short\.tsv:2: wrong number of fields \(2\)"):
        list(NliReader(short, language="fr"))
    with pytest.raises(UnknownLanguageError):
        list(NliReader(_write(tmp_path, "x.tsv", XNLI_TEST), languages=LANGUAGES))


# ------------------------------------------------------------------ subword alignment
@pytest.fixture(scope="module")
def tokenizer():
    text = ["in dem haus wohnen wir .", "barack obama visited paris", "un chat dort"] * 20
    return WordPieceTokenizer.train({"de": text}, vocab_size=60)


def test_tag_labels_go_on_the_first_subword(tokenizer):
    words = tf.ragged.constant([["Barack", "Obama", "visited", "Paris"], ["Hi"]])
    labels = tf.ragged.constant([[1, 2, 0, 5], [0]])
    out = encode_tagged_words(tokenizer, words, labels, sequence_length=16)
    pieces = tokenizer.tokenize_pretokenized(words).to_list()
    for row, (row_pieces, row_labels) in enumerate(zip(pieces, labels.to_list())):
        expected_labels, expected_weights, ids = [0], [0.0], [CLS_ID]
        for word_pieces, label in zip(row_pieces, row_labels):
            ids += word_pieces
            expected_labels += [label] + [0] * (len(word_pieces) - 1)
            expected_weights += [1.0] + [0.0] * (len(word_pieces) - 1)
        ids.append(SEP_ID)
        n = len(ids)
        assert out["token_ids"].numpy()[row, :n].tolist() == ids
        assert out["labels"].numpy()[row].tolist() == expected_labels + [0] * (17 - n)
        assert out["label_weights"].numpy()[row].tolist() == expected_weights + [0.0] * (17 - n)
    assert max(len(p) for p in pieces[0]) > 1  # some word really has several subwords
    assert out["truncated_words"].numpy().tolist() == [0, 0]
    short = encode_tagged_words(tokenizer, words, labels, sequence_length=4)
    assert short["label_weights"].numpy().sum(axis=1).tolist() == [1.0, 1.0]
    assert short["truncated_words"].numpy().tolist() == [3, 0]


def test_tagging_dataset_from_conllu(tmp_path, tokenizer):
    path = _write(tmp_path, "de.conllu", TRICKY_CONLLU)
    reader = ConlluReader(path, "de", label_names=UPOS_TAGS)
    batch = next(iter(tagging_dataset(reader, tokenizer, LANGUAGES, UPOS_TAGS, 24, batch_size=2)))
    assert batch["language_ids"].numpy().tolist() == [1, 1]
    weights = batch["label_weights"].numpy()
    assert weights.sum(axis=1).tolist() == [6.0, 1.0]
    first_labels = batch["labels"].numpy()[0][weights[0] > 0]
    assert [UPOS_TAGS[i] for i in first_labels] == ["ADP", "DET", "NOUN", "VERB", "PRON", "PUNCT"]
    bad = [TaggedSentence(("a",), ("NOUNX",), "de", source=f"{path}:7")]
    with pytest.raises(Exception, match="de.conllu:7: unknown tag"):
        next(iter(tagging_dataset(bad, tokenizer, LANGUAGES, UPOS_TAGS, 8, 1)))


def _dataset_ops(dataset) -> set:
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    return {node.op for node in graph.node} | {
        node.op for function in graph.library.function for node in function.node_def
    }


def test_in_memory_task_data_runs_no_python_and_matches_the_streamed_route(tmp_path, tokenizer):
    """Lists become tensors (safe under tf.distribute); readers stream through a generator; same batches."""
    path = _write(tmp_path, "de.conllu", TRICKY_CONLLU)
    reader = ConlluReader(path, "de", label_names=UPOS_TAGS)
    streamed = tagging_dataset(reader, tokenizer, LANGUAGES, UPOS_TAGS, 24, batch_size=2)
    in_memory = tagging_dataset(list(reader), tokenizer, LANGUAGES, UPOS_TAGS, 24, batch_size=2)
    labels = ("entailment", "neutral")
    examples = [ClassificationExample("un chat", "neutral", "fr"), ClassificationExample("das haus", "entailment", "de")]
    pairs = (classification_dataset(StreamedOnly(examples), tokenizer, LANGUAGES, labels, 8, 2),
             classification_dataset(examples, tokenizer, LANGUAGES, labels, 8, 2))
    for generated, tensors in ((streamed, in_memory), pairs):
        python_ops = {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
        assert python_ops & _dataset_ops(generated)
        assert not python_ops & _dataset_ops(tensors)
        for a, b in zip(generated, tensors, strict=True):
            assert set(a) == set(b)
            for key in a:
                np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


class StreamedOnly:
    """An iterable that is not a sequence (like a reader)."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


def test_classification_dataset_single_and_pairs(tokenizer):
    examples = [
        ClassificationExample("in dem haus", "entailment", "de", text_pair="wir wohnen"),
        ClassificationExample("un chat", "neutral", "fr", text_pair="dort"),
    ]
    labels = ("entailment", "neutral", "contradiction")
    batch = next(
        iter(classification_dataset(examples, tokenizer, LANGUAGES, labels, 12, 2, pairs=True))
    )
    assert batch["labels"].numpy().tolist() == [0, 1]
    assert batch["language_ids"].numpy().tolist() == [1, 2]
    assert batch["segment_ids"].numpy()[0].max() == 1
    single = [ClassificationExample("un chat", "neutral", "fr")]
    batch = next(iter(classification_dataset(single, tokenizer, LANGUAGES, labels, 8, 1)))
    assert set(batch) == {"token_ids", "padding_mask", "language_ids", "labels"}
    with pytest.raises(DataFormatError, match=r"f\.tsv:3: unknown label.*found 'maybe'"):
        label_id(ClassificationExample("x", "maybe", "fr", source="f.tsv:3"), labels)


def test_example_tfrecords_roundtrip(tmp_path):
    path = str(tmp_path / "task.tfrecord")
    rows = [
        {
            "token_ids": np.arange(4, dtype=np.int32),
            "label_weights": np.array([0, 1, 1, 0], np.float32),
        },
        {"token_ids": np.arange(4, 8, dtype=np.int32), "label_weights": np.ones(4, np.float32)},
    ]
    assert write_example_tfrecord(path, rows) == 2
    dataset = example_tfrecord_dataset(
        path, {"token_ids": (4,), "label_weights": (4,)},
        {"token_ids": tf.int32, "label_weights": tf.float32},
    )  # fmt: skip
    read = list(dataset)
    assert read[1]["token_ids"].numpy().tolist() == [4, 5, 6, 7]
    assert read[0]["label_weights"].numpy().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert read[0]["token_ids"].dtype == tf.int32
