"""A small user corpus directory written by the tests (text, CoNLL-U, IOB, NLI, parallel).

Languages: ``en`` (toy English), ``sw`` (the same sentences with the word
order reversed) and optionally ``de`` (the words with a suffix). Tags follow
from the toy grammar's word classes, so they are identical across languages.
"""

import os

from tf_metaling.data.synthetic import reverse_words, toy_sentences

DETERMINERS = {"the", "a", "this", "some"}
ADJECTIVES = {"small", "old", "green", "quiet", "happy", "tall", "dark"}
PREPOSITIONS = {"near", "behind", "under", "beside"}
VERBS = {"sees", "see", "likes", "like", "finds", "find", "follows", "follow", "hears", "hear", "builds", "build"}
PERSONS = {"farmer", "farmers", "teacher", "teachers"}
PLACES = {"river", "rivers", "house", "houses"}


def upos(word: str) -> str:
    word = word.removesuffix("en")  # the "de" transform
    if word == ".":
        return "PUNCT"
    if word in DETERMINERS:
        return "DET"
    if word in ADJECTIVES:
        return "ADJ"
    if word in PREPOSITIONS:
        return "ADP"
    if word in VERBS:
        return "VERB"
    return "NOUN"


def ner(word: str) -> str:
    word = word.removesuffix("en")
    return "B-PER" if word in PERSONS else "B-LOC" if word in PLACES else "O"


TRANSFORMS = {
    "en": lambda s: s,
    "sw": reverse_words,
    "de": lambda s: " ".join(w if w == "." else w + "en" for w in s.split()),
}


def _conllu(sentences):
    lines = []
    for number, sentence in enumerate(sentences):
        lines += [f"# sent_id = s{number}", f"# text = {sentence}"]
        lines += [f"{i}\t{w}\t_\t{upos(w)}\t_\t_\t_\t_\t_\t_" for i, w in enumerate(sentence.split(), 1)]
        lines.append("")
    return "\n".join(lines) + "\n"


def _iob(code, sentences):
    blocks = ["\n".join(f"{code}:{w}\t{ner(w)}" for w in sentence.split()) for sentence in sentences]
    return "\n\n".join(blocks) + "\n"


def _nli(sentences):
    rows = ["premise\thypo\tlabel"]
    for number, sentence in enumerate(sentences):
        other = sentences[(number + 1) % len(sentences)]
        rows.append(f"{sentence}\t{sentence if number % 2 else other}\t{'entailment' if number % 2 else 'neutral'}")
    return "\n".join(rows) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_corpus_directory(root, languages=("en", "sw"), text_lines=200, task_sentences=60, nli=False, ner=True,
                           pos_languages=None):
    """Writes the corpus directory; returns its path."""
    base = toy_sentences(text_lines, seed=11)
    tagged = toy_sentences(task_sentences, seed=12)
    for code in languages:
        transform = TRANSFORMS[code]
        write(os.path.join(root, "text", f"{code}.txt"), "\n".join(transform(s) for s in base) + "\n")
        if pos_languages is None or code in pos_languages:
            write(os.path.join(root, "pos", f"{code}.conllu"), _conllu([transform(s) for s in tagged]))
        if ner and code != "sw":
            write(os.path.join(root, "ner", f"{code}.iob"), _iob(code, [transform(s) for s in tagged]))
        if nli:
            write(os.path.join(root, "nli", f"{code}.tsv"), _nli([transform(s) for s in tagged]))
        if code != "en":
            pairs = toy_sentences(40, seed=13)
            write(os.path.join(root, "parallel", f"{code}-en.tsv"),
                  "\n".join(f"{transform(s)}\t{s}" for s in pairs) + "\n")
    return root
