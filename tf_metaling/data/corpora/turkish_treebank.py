"""The built-in Turkish POS task: the Turkish Web Treebank obtained with pip only.

Source: the PyPI package ``turkish-treebanks`` 1.0.0 (Apache-2.0, Google
Research's Turkish Web Treebank and Wikipedia treebank), pinned by SHA-256 and
fetched with ``pip download --require-hashes`` like the built-in corpus.

The treebank annotates *inflectional groups* (IGs): a word such as
"Açıklanmayan" is four token lines ("Açık", "la", "nma", "yan") whose
continuation lines have no lemma (``_``) and follow a line marked
``SpaceAfter=No``. Tagging here is over words, as in XTREME's UD POS task:
consecutive IGs of one word are joined and the word takes the tag of its LAST
IG (in Turkish the final derivation decides the word's part of speech:
"imkan+sız" is a predicate, tagged VERB). Punctuation attached without a space
("imkansız.") has its own lemma and stays a separate word. The treebank uses
the UD v1 tag names; they are mapped to UD v2 (`UPOS_TAGS`): CONJ -> CCONJ,
PRT -> PART, ONOM -> INTJ, AFFIX -> X, with the counts in ``report.json``.

Sentences are split 80/10/10 into train / valid / test by a hash of their
``sent_id`` and written as word-level CoNLL-U files (read back and checked with
`ConlluReader`) under ``<cache>/corpora/turkish-treebanks-v1/processed``, with
the license, provenance and checksums; the directory is built under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import os
import zipfile
from collections.abc import Callable

from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.token_tagging import UPOS_TAGS
from tf_metaling.errors import DataFormatError
from tf_metaling.package_cache import (
    PackageBuild,
    PackagePin,
    PackageRecipe,
    default_cache_dir,
    pin_provenance,
    pip_download,
)

TREEBANK_VERSION = "turkish-treebanks-v1"
TREEBANK_PACKAGE = PackagePin(
    name="turkish-treebanks",
    version="1.0.0",
    filename="turkish_treebanks-1.0.0-py3-none-any.whl",
    sha256="5a009c29a8e96e8f7e25059d59ac293c3baead6d746bf0fa4c9d3349b1e37ba0",
    license="Apache-2.0 (LICENSE file in the wheel)",
    homepage="https://github.com/google-research-datasets/turkish-treebanks",
    contents="Turkish Web Treebank and Wikipedia treebank, CoNLL-U (data/web.conllu, data/wiki.conllu)",
)
TREEBANK_MEMBERS = ("data/web.conllu", "data/wiki.conllu")
# UD v1 tag names of the treebank -> UD v2.
UD1_TO_UD2 = {"CONJ": "CCONJ", "PRT": "PART", "ONOM": "INTJ", "AFFIX": "X"}
SPLITS = ("train", "valid", "test")


def treebank_root(cache_dir=None) -> str:
    return os.path.join(cache_dir or default_cache_dir(), "corpora", TREEBANK_VERSION)


def split_of_sentence(sentence_id: str) -> str:
    bucket = int(hashlib.sha256(f"split:{sentence_id}".encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "valid" if bucket < 90 else "test"


@dataclasses.dataclass
class WordSentence:
    sentence_id: str
    text: str
    words: list
    tags: list


def words_from_inflectional_groups(lines: list[str], member: str, first_line: int) -> tuple[list, list, collections.Counter]:
    """Joins the IG lines of one sentence into words; returns ``(words, tags, mapped tag counts)``."""
    words, tags, mapped = [], [], collections.Counter()
    continues = False
    for offset, line in enumerate(lines):
        columns = line.split("\t")
        if len(columns) != 10:
            raise DataFormatError(
                f"expected 10 tab-separated columns, found {len(columns)}",
                path=member, line=first_line + offset, language="tr",
            )
        form, lemma, tag, misc = columns[1], columns[2], columns[3], columns[9]
        if tag in UD1_TO_UD2:
            mapped[f"{tag}->{UD1_TO_UD2[tag]}"] += 1
            tag = UD1_TO_UD2[tag]
        if tag not in UPOS_TAGS:
            raise DataFormatError(
                f"tag {tag!r} is not a UD tag", path=member, line=first_line + offset,
                field="UPOS", language="tr", expected=", ".join(UPOS_TAGS),
            )
        if continues and lemma == "_" and form != "_":
            words[-1] += form
            tags[-1] = tag  # the last IG decides the word's part of speech
        else:
            words.append(form)
            tags.append(tag)
        continues = "SpaceAfter=No" in misc.split("|")
    return words, tags, mapped


def read_treebank_member(text: str, member: str) -> tuple[list[WordSentence], collections.Counter]:
    sentences, mapped = [], collections.Counter()
    block, comments, first = [], {}, None
    for line_number, line in enumerate(text.splitlines() + [""], start=1):
        if not line.strip():
            if block:
                if "sent_id" not in comments:
                    raise DataFormatError("sentence without '# sent_id'", path=member, line=first, language="tr")
                words, tags, counts = words_from_inflectional_groups(block, member, first)
                mapped.update(counts)
                sentences.append(WordSentence(comments["sent_id"], comments.get("text", " ".join(words)), words, tags))
            block, comments, first = [], {}, None
        elif line.startswith("#"):
            key, _, value = line[1:].partition("=")
            comments[key.strip()] = value.strip()
        else:
            if first is None:
                first = line_number
            block.append(line)
    return sentences, mapped


def _conllu_lines(sentences: list[WordSentence]):
    for sentence in sentences:
        yield f"# sent_id = {sentence.sentence_id}"
        yield f"# text = {sentence.text}"
        for index, (word, tag) in enumerate(zip(sentence.words, sentence.tags), start=1):
            yield f"{index}\t{word}\t_\t{tag}\t_\t_\t_\t_\t_\t_"
        yield ""


def _write_treebank(paths: dict, staging: str, pin: PackagePin) -> PackageBuild:
    """Converts and splits the treebank into `staging` (the recipe's build step)."""
    wheel = paths[pin.name]
    sentences, mapped, members = [], collections.Counter(), {}
    with zipfile.ZipFile(wheel) as archive:
        for member in TREEBANK_MEMBERS:
            text = archive.read(member).decode("utf-8")
            read, counts = read_treebank_member(text, f"{os.path.basename(wheel)}!{member}")
            members[member] = len(read)
            sentences += read
            mapped.update(counts)
        dist_info = f"{pin.name.replace('-', '_')}-{pin.version}.dist-info/LICENSE"
        license_text = archive.read(dist_info).decode("utf-8")
    by_split = {split: [] for split in SPLITS}
    for sentence in sentences:
        by_split[split_of_sentence(sentence.sentence_id)].append(sentence)
    report = {"version": TREEBANK_VERSION, "members": members, "mapped_tags": dict(mapped), "splits": {}}
    for split, rows in by_split.items():
        path = os.path.join(staging, f"tr.{split}.conllu")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(_conllu_lines(rows)) + "\n")
        checked = list(ConlluReader(path, "tr", label_names=UPOS_TAGS))  # the project's reader checks it
        report["splits"][split] = {
            "sentences": len(checked),
            "words": sum(len(s.words) for s in checked),
            "tags": dict(collections.Counter(t for s in checked for t in s.tags).most_common()),
        }
    return PackageBuild(
        licenses={"LICENSE.txt": license_text},
        provenance={
            "package": pin_provenance(pin, members_read=list(TREEBANK_MEMBERS)),
            "conversion": "inflectional groups joined into words; the word takes its last group's tag; "
                          "UD v1 tag names mapped to UD v2",
        },
        summary=f"{sum(members.values())} sentences",
        json_files={"report.json": report},
    )


def turkish_treebank_recipe(cache_dir=None, pin: PackagePin = TREEBANK_PACKAGE) -> PackageRecipe:
    """The package recipe of the treebank (its directory: ``treebank_root(cache_dir)/processed``)."""
    root = treebank_root(cache_dir)
    processed = os.path.join(root, "processed")
    return PackageRecipe(
        name="Turkish POS task",
        version=TREEBANK_VERSION,
        directory=processed,
        downloads_dir=os.path.join(root, "downloads"),
        pins=(pin,),
        build=functools.partial(_write_treebank, pin=pin),
        missing_message=f"The Turkish treebank is not in {processed}.",
    )


def build_turkish_treebank(cache_dir=None, downloader: Callable = pip_download, log=print,
                           pin: PackagePin = TREEBANK_PACKAGE) -> str:
    """Fetches, converts, splits and writes the treebank; returns the processed dir."""
    return turkish_treebank_recipe(cache_dir, pin).build_directory(downloader, log=log)


def turkish_pos_files(cache_dir=None, download: bool = True, downloader: Callable = pip_download,
                      log=print, pin: PackagePin = TREEBANK_PACKAGE) -> dict[str, str]:
    """``{split: word-level CoNLL-U path}`` of the built-in Turkish POS task (built on first use)."""
    processed = turkish_treebank_recipe(cache_dir, pin).checked_directory(download, downloader, log=log)
    return {split: os.path.join(processed, f"tr.{split}.conllu") for split in SPLITS}
