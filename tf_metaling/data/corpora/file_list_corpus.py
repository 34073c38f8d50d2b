"""Text files named per language (``data.corpus=files``), as a `Corpus` without tasks."""

from __future__ import annotations

import os

from tf_metaling.data.corpora.corpus import Corpus, register_corpus
from tf_metaling.languages import LanguageVocabulary


def parse_language_files(spec: str, field: str) -> dict[str, str]:
    """``"en=/a.txt,sw=/b.txt.gz"`` -> ``{"en": "/a.txt", "sw": "/b.txt.gz"}``."""
    files = {}
    for position, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
        if "=" not in item:
            raise ValueError(f"config field {field}: item {position} {item!r} is not 'language=path'.")
        code, path = (s.strip() for s in item.split("=", 1))
        if code in files:
            raise ValueError(f"config field {field}: language {code!r} given twice.")
        if not os.path.exists(path):
            raise FileNotFoundError(f"config field {field}: {code}={path}: no such file.")
        files[code] = path
    return files


@register_corpus
class FileListCorpus(Corpus):
    """Training and validation text files given as ``"code=path,..."`` (streamed, never loaded whole)."""

    kind = "files"

    def __init__(self, train_files: str, valid_files: str, languages=None):
        train = parse_language_files(train_files, "data.train_files")
        valid = parse_language_files(valid_files, "data.valid_files")
        self.languages = tuple(languages or train)
        vocabulary = LanguageVocabulary(list(self.languages))
        for field, sources in (("data.train_files", train), ("data.valid_files", valid)):
            missing = [code for code in self.languages if code not in sources]
            if missing:
                raise ValueError(f"config field {field}: no file for language(s) {missing}.")
            vocabulary.check(list(sources), where=f"config field {field}")
        self._files = {"train": train, "valid": valid}
        self.groups = {"high": list(self.languages), "low": []}

    @classmethod
    def from_config(cls, data_config, seed: int = 0, log=None) -> FileListCorpus:
        return cls(data_config.train_files, data_config.valid_files, list(data_config.languages) or None)

    def text_sources(self, split: str) -> dict:
        if split not in self._files:
            raise ValueError(f"data.corpus=files has train and valid files only, not {split!r}.")
        return {code: self._files[split][code] for code in self.languages}
