"""The built-in Turkish POS task: inflectional groups joined into words, UD v2 tags, cached splits."""

import hashlib
import os
import shutil
import zipfile

import pytest

from tf_metaling.data.conllu_reader import ConlluReader
from tf_metaling.data.corpora.turkish_treebank import read_treebank_member, turkish_pos_files
from tf_metaling.errors import DataFormatError
from tf_metaling.package_cache import PackagePin

# "Açıklanmayan soruların ... imkansız." as the treebank writes it: one line per inflectional group.
SENTENCE = """# sent_id = tr-blog:1:S1
# text = Açıklanmayan sorular imkansız.
1\tAçık\taçık\tNOUN\tNN\t_\t2\tig\t_\tSpaceAfter=No
2\tla\t_\tVERB\tVB\t_\t3\tig\t_\tSpaceAfter=No
3\tnma\t_\tVERB\tVB\t_\t4\tig\t_\tSpaceAfter=No
4\tyan\t_\tADJ\tVJ\t_\t5\trcmod\t_\t_
5\tsorular\tsoru\tNOUN\tNN\t_\t7\tnsubj\t_\t_
6\tve\tve\tCONJ\tCC\t_\t7\tcc\t_\t_
7\timkan\timkan\tNOUN\tNN\t_\t8\tig\t_\tSpaceAfter=No
8\tsız\t_\tVERB\tNOMP\t_\t0\troot\t_\tSpaceAfter=No
9\t.\t.\tPUNCT\t.\t_\t8\tp\t_\t_
"""


def test_inflectional_groups_become_words_tagged_by_their_last_group():
    sentences, mapped = read_treebank_member(SENTENCE, "web.conllu")
    (sentence,) = sentences
    assert sentence.words == ["Açıklanmayan", "sorular", "ve", "imkansız", "."]
    assert sentence.tags == ["ADJ", "NOUN", "CCONJ", "VERB", "PUNCT"]  # punctuation stays its own word
    assert dict(mapped) == {"CONJ->CCONJ": 1}


def test_malformed_treebank_line_names_member_and_line():
    broken = SENTENCE.replace("5\tsorular\tsoru\tNOUN\tNN\t_\t7\tnsubj\t_\t_", "5\tsorular\tNOUN")
    with pytest.raises(DataFormatError, match=r"web\.conllu:7: expected 10 tab-separated columns"):
        read_treebank_member(broken, "web.conllu")


def test_cache_is_built_from_a_pinned_wheel_and_read_back(tmp_path):
    wheel = tmp_path / "turkish_treebanks-1.0.0-py3-none-any.whl"
    blocks = [SENTENCE.replace("tr-blog:1:S1", f"tr-blog:1:S{i}") for i in range(40)]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("data/web.conllu", "\n".join(blocks))
        archive.writestr("data/wiki.conllu", blocks[0].replace("S0", "W0"))
        archive.writestr("turkish_treebanks-1.0.0.dist-info/LICENSE", "Apache License 2.0\n")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pin = PackagePin("turkish-treebanks", "1.0.0", wheel.name, digest, "Apache-2.0", "-", "fixture")

    def downloader(pin, directory):
        return shutil.copy(wheel, os.path.join(directory, pin.filename))

    lines = []
    files = turkish_pos_files(str(tmp_path / "cache"), downloader=downloader, log=lines.append, pin=pin)
    read = {split: list(ConlluReader(path, "tr")) for split, path in files.items()}
    assert sum(len(v) for v in read.values()) == 41 and min(len(v) for v in read.values()) > 0
    assert read["train"][0].tags == ("ADJ", "NOUN", "CCONJ", "VERB", "PUNCT")
    root = os.path.dirname(files["train"])
    assert {"LICENSE.txt", "PROVENANCE.json", "report.json", "CHECKSUMS.sha256"} <= set(os.listdir(root))
    assert any("downloading turkish-treebanks==1.0.0" in line for line in lines)  # progress is shown
    # Second call: from the cache, no download.
    assert turkish_pos_files(str(tmp_path / "cache"), downloader=None, pin=pin) == files
