"""A directory the user owns, as a `Corpus`: their text and task files in one layout.

    DIR/text/<code>.txt[.gz]            one sentence or paragraph per line (required)
    DIR/text/<code>.valid.txt[.gz]      optional held-out text; with .test.txt[.gz] too,
    DIR/text/<code>.test.txt[.gz]       otherwise a deterministic 80/10/10 split by line
    DIR/pos/<code>.conllu[.gz]          UPOS tagging (CoNLL-U), accuracy per word
    DIR/ner/<code>.iob[.gz]             NER (WikiAnn/PAN-X or CoNLL IOB), span F1 (seqeval)
    DIR/nli/<code>.tsv[.gz]             XNLI-style TSV: trained on the pivot, zero-shot elsewhere
    DIR/parallel/<code>-<pivot>.tsv     "sentence<TAB>its pivot translation" per line (retrieval)

Task files may also come split: ``<code>.train.<ext>`` and ``<code>.test.<ext>``
instead of ``<code>.<ext>``, which is otherwise split 80/10/10 by sentence (the
10% valid part is unused by the study). Splits go by position: of every ten
lines or sentences the ninth is held out for validation and the tenth for test. The languages are the codes of
``DIR/text`` (``languages=`` selects some); a task or parallel file for a code
without text is an error, as the model would have no such language.

Everything is read and checked when the corpus is built, before any training:
an unknown file name, a requested language without text, an empty file,
invalid UTF-8, a malformed line (every reader names file:line), a test tag the
training data never uses, a parallel line without exactly two fields.
Languages with fewer than `LOW_RESOURCE_SHARE` of the largest language's
training lines form the low-resource group.
"""

from __future__ import annotations

import hashlib
import os
import re

from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.corpora.corpus import Corpus, register_corpus
from tf_metaling.data.iob_reader import IobReader
from tf_metaling.data.nli_reader import NliReader
from tf_metaling.data.tasks import ClassificationTask, RetrievalSet, TaggingTask, check_tag_sets
from tf_metaling.data.text_reader import TextLineReader, decode_line, open_binary
from tf_metaling.errors import DataFormatError

TASK_DIRS = {"pos": (".conllu",), "ner": (".iob", ".txt"), "nli": (".tsv",)}
KNOWN_DIRS = ("text", "parallel") + tuple(TASK_DIRS)
LOW_RESOURCE_SHARE = 0.25
_CODE = r"[A-Za-z][A-Za-z0-9_]{0,31}"
_TEXT_NAME = re.compile(rf"^({_CODE})(\.valid|\.test)?\.txt(\.gz)?$")
_PARALLEL_NAME = re.compile(rf"^({_CODE})-({_CODE})\.tsv(\.gz)?$")


def _split_of(number: int) -> str:
    """80/10/10 by position: of every ten lines (or sentences) the 9th is valid, the 10th test."""
    return "valid" if number % 10 == 8 else "test" if number % 10 == 9 else "train"


def _task_name(directory: str, name: str, extensions) -> tuple:
    """``(code, part)`` of a task file name; part is "all", "train" or "test"."""
    for extension in extensions:
        match = re.match(rf"^({_CODE})(\.train|\.test)?{re.escape(extension)}(\.gz)?$", name)
        if match:
            return match.group(1), (match.group(2) or ".all")[1:]
    raise DataFormatError(
        "unexpected file name", path=os.path.join(directory, name),
        expected=" or ".join(f"<code>[.train|.test]{e}[.gz]" for e in extensions),
    )


@register_corpus
class DirectoryCorpus(Corpus):
    """The user's corpus directory (layout in the module docstring).

    Args:
        root: the directory.
        languages: codes to use (default: every code of ``root/text``).
    """

    kind = "directory"

    def __init__(self, root, languages=None):
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"corpus directory {self.root}: no such directory.")
        for name in sorted(os.listdir(self.root)):
            if os.path.isdir(os.path.join(self.root, name)) and name not in KNOWN_DIRS:
                raise DataFormatError(
                    "unexpected directory", path=os.path.join(self.root, name), expected=", ".join(KNOWN_DIRS)
                )
        text_dir = os.path.join(self.root, "text")
        if not os.path.isdir(text_dir):
            raise FileNotFoundError(f"{text_dir}: missing; the corpus needs text/<code>.txt for every language.")
        files = {}
        for name in sorted(os.listdir(text_dir)):
            match = _TEXT_NAME.match(name)
            if not match:
                raise DataFormatError(
                    "unexpected file name", path=os.path.join(text_dir, name),
                    expected="<code>.txt, <code>.valid.txt or <code>.test.txt (optionally .gz)",
                )
            part = (match.group(2) or ".train")[1:]
            files.setdefault(match.group(1), {})[part] = os.path.join(text_dir, name)
        for code, parts in files.items():
            if "train" not in parts:
                raise FileNotFoundError(f"{text_dir}/{code}.txt: missing (found {sorted(parts.values())}).")
            if ("valid" in parts) != ("test" in parts):
                given, absent = ("valid", "test") if "valid" in parts else ("test", "valid")
                raise FileNotFoundError(
                    f"{parts[given]}: given without {text_dir}/{code}.{absent}.txt; give both or neither "
                    "(neither: an 80/10/10 split by line)."
                )
        if not files:
            raise FileNotFoundError(f"{text_dir}: no <code>.txt file.")
        self.available = tuple(sorted(files))
        selected = list(languages) if languages else list(self.available)
        for code in selected:
            if code not in files:
                raise FileNotFoundError(
                    f"{text_dir}/{code}.txt: missing; language {code!r} was requested but {text_dir} holds "
                    f"{list(self.available)}."
                )
        self._text = {}
        line_counts = {}
        for code in selected:
            parts = files[code]
            if "valid" in parts:
                for part in ("train", "valid", "test"):  # read once: encoding and emptiness errors now
                    count = sum(1 for _ in TextLineReader(parts[part], code))
                    line_counts.setdefault(code, count)
                self._text[code] = {"train": parts["train"], "valid": parts["valid"], "test": parts["test"]}
            else:
                lines = list(TextLineReader(parts["train"], code))
                split = {"train": [], "valid": [], "test": []}
                for number, line in enumerate(lines):
                    split[_split_of(number)].append(line)
                for part, rows in split.items():
                    if not rows:
                        raise DataFormatError(
                            f"too few lines ({len(lines)}) for an 80/10/10 split: the {part} part is empty",
                            path=parts["train"], language=code,
                            expected="at least 10 lines, or explicit .valid.txt and .test.txt files",
                        )
                self._text[code] = split
                line_counts[code] = len(split["train"])
        largest = max(line_counts.values())
        low = [c for c in selected if line_counts[c] < LOW_RESOURCE_SHARE * largest]
        high = [c for c in selected if c not in low]
        self.languages = tuple(high + low)
        self.groups = {"high": high, "low": low}
        self.train_lines = line_counts
        self._tasks = self._read_tagging_tasks()
        self._nli = self._read_task_files("nli")
        self._parallel = self._read_parallel()

    # ------------------------------------------------------------------ text
    @classmethod
    def from_config(cls, data_config, seed: int = 0, log=None) -> DirectoryCorpus:
        if not data_config.corpus_dir:
            raise ValueError("config field data.corpus_dir: required with data.corpus=directory.")
        return cls(data_config.corpus_dir, languages=list(data_config.languages) or None)

    def text_sources(self, split: str) -> dict:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split={split!r}: expected train, valid or test.")
        return {code: self._text[code][split] for code in self.languages}

    # ------------------------------------------------------------------ task files
    def _check_code(self, code: str, path: str):
        if code not in self.available:
            raise DataFormatError(
                f"language {code!r} has no text in {self.root}/text, so the model has no such language",
                path=path, language=code, expected=f"one of {list(self.available)} (or add text/{code}.txt)",
            )

    def _read_task_files(self, task: str) -> dict:
        """``{code: {"train": [...], "test": [...]}}`` of one task directory (selected languages)."""
        directory = os.path.join(self.root, task)
        if not os.path.isdir(directory):
            return {}
        readers = {
            "pos": lambda path, code: ConlluReader(path, code),
            "ner": lambda path, code: IobReader(path, language=code),
            "nli": lambda path, code: NliReader(path, language=code, keep_languages=[code]),
        }
        parts = {}
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            code, part = _task_name(directory, name, TASK_DIRS[task])
            self._check_code(code, path)
            parts.setdefault(code, {})[part] = path
        data = {}
        for code, files in parts.items():
            if "all" in files and len(files) > 1 or ("train" in files) != ("test" in files):
                raise DataFormatError(
                    f"give either <code>.<ext> or both <code>.train.<ext> and <code>.test.<ext>, found "
                    f"{sorted(os.path.basename(p) for p in files.values())}", path=directory, language=code,
                )
            if code not in self.languages:
                continue
            read = {part: list(readers[task](path, code)) for part, path in files.items()}
            for part, rows in read.items():
                if not rows:
                    raise DataFormatError("no examples", path=files[part], language=code)
            if "all" in read:
                split = {"train": [], "test": []}
                for number, row in enumerate(read["all"]):
                    part = _split_of(number)
                    if part != "valid":
                        split[part].append(row)
                if not split["train"] or not split["test"]:
                    raise DataFormatError(
                        f"too few examples ({len(read['all'])}) to split into train and test",
                        path=files["all"], language=code, expected="at least 10, or .train/.test files",
                    )
                read = split
            data[code] = {"train": read["train"], "test": read["test"], "source": files.get("train", files.get("all"))}
        return data

    def _read_tagging_tasks(self) -> dict:
        tasks = {}
        for name, metric in (("pos", "accuracy"), ("ner", "span_f1")):
            data = self._read_task_files(name)
            if not data:
                continue
            labels = set()
            for code, parts in data.items():
                labels.update(check_tag_sets(parts["train"], parts["test"], parts["source"], code))
            tasks[name] = TaggingTask(
                name, metric, tuple(sorted(labels)),
                {code: parts["train"] for code, parts in data.items()},
                {code: parts["test"] for code, parts in data.items()},
                {code: parts["source"] for code, parts in data.items()},
            )
        return tasks

    def _read_parallel(self) -> dict:
        directory = os.path.join(self.root, "parallel")
        if not os.path.isdir(directory):
            return {}
        pairs = {}
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            match = _PARALLEL_NAME.match(name)
            if not match:
                raise DataFormatError("unexpected file name", path=path, expected="<code>-<pivot>.tsv[.gz]")
            code, pivot = match.group(1), match.group(2)
            self._check_code(code, path)
            self._check_code(pivot, path)
            rows = []
            with open_binary(path) as f:
                for number, raw in enumerate(f, start=1):
                    line = decode_line(raw, path, number, code).rstrip("\r\n")
                    if not line.strip():
                        continue
                    fields = line.split("\t")
                    if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                        raise DataFormatError(
                            f"expected 2 non-empty tab-separated fields, found {len(fields)}",
                            path=path, line=number, language=code, expected=f"{code} sentence<TAB>{pivot} sentence",
                        )
                    rows.append((fields[0].strip(), fields[1].strip()))
            if len(rows) < 2:
                raise DataFormatError(f"{len(rows)} sentence pairs; retrieval needs at least 2", path=path,
                                      language=code)
            pairs[(code, pivot)] = rows
        return pairs

    # ------------------------------------------------------------------ the Corpus interface
    def retrieval_sets(self, pivot: str, max_pairs=None) -> dict:
        sets = {}
        for (code, to), rows in self._parallel.items():
            if to != pivot or code not in self.languages or pivot not in self.languages:
                continue
            if max_pairs is not None and len(rows) > max_pairs:
                rows = sorted(rows, key=lambda r: hashlib.sha256(f"retrieval:{r[0]}".encode()).hexdigest())[:max_pairs]
            sets[code] = RetrievalSet(code, pivot, [r[0] for r in rows], [r[1] for r in rows],
                                      [str(i) for i in range(len(rows))])
        return sets

    def classification_tasks(self, pivot: str) -> dict:
        if pivot not in self._nli or len(self._nli) < 1:
            return {}
        train = self._nli[pivot]["train"]
        labels = tuple(sorted({e.label for e in train}))
        test = {code: parts["test"] for code, parts in self._nli.items()}
        for code, examples in test.items():
            for example in examples:
                if example.label not in labels:
                    path, _, line = example.source.rpartition(":")
                    raise DataFormatError(
                        f"label {example.label!r} never occurs in the training data ({self._nli[pivot]['source']})",
                        path=path or None, line=int(line) if line.isdigit() else None, language=code,
                        expected=", ".join(labels),
                    )
        train_by_language = {code: parts["train"] for code, parts in self._nli.items()}
        return {"nli": ClassificationTask("nli", labels, pivot, train, {}, test, train_by_language)}

    def tagging_tasks(self) -> dict:
        return dict(self._tasks)

    def describe(self) -> str:
        tasks = sorted(self._tasks) + (["nli"] if self._nli else []) + (["retrieval"] if self._parallel else [])
        return f"directory corpus {self.root}: {', '.join(self.languages)}; tasks: {', '.join(tasks) or 'none'}"
