"""The probe's JSON-lines log of gradient similarities over training.

One line per probe measurement: the JSON of a `GradientSimilarity`
(step, languages, overall and per-group matrices, norms, losses). Lines are
appended with one write each, flushed and fsynced, so a crash leaves at most a
torn last line; opening the log for appending cuts such a line off, and
reading skips it. A run resumed from an earlier checkpoint measures some
steps again: `SimilarityLog` can drop the records past the resumed step, and
`read_similarity_log` keeps the last record of a step.
"""

from __future__ import annotations

import json
import os

from tf_metaling.atomic_files import atomic_path
from tf_metaling.interference.gradient_similarity import GradientSimilarity

LOG_FILE_NAME = "gradient_similarity.jsonl"


def _complete_lines(path: str) -> tuple[list[bytes], int]:
    """The complete lines of `path` and the byte length they span (a torn tail excluded)."""
    with open(path, "rb") as file:
        data = file.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), end


def read_similarity_log(path: str) -> list:
    """The log's records as `GradientSimilarity`s, sorted by step (the last record of a step wins).

    Raises ValueError naming ``path:line`` for a line that is not a record
    (other than a torn last line).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no gradient-similarity log here.")
    lines, _ = _complete_lines(path)
    by_step, unnumbered, languages = {}, [], None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not a JSON record ({error.msg}).") from error
        similarity = GradientSimilarity.from_json(record, where=where)
        if languages is None:
            languages = similarity.languages
        elif similarity.languages != languages:
            raise ValueError(
                f"{where}: languages {list(similarity.languages)} differ from the log's first record "
                f"{list(languages)}; one log holds one probe's measurements."
            )
        if similarity.step is None:
            unnumbered.append(similarity)
        else:
            by_step[similarity.step] = similarity
    return unnumbered + [by_step[step] for step in sorted(by_step)]


class SimilarityLog:
    """Appends `GradientSimilarity` records to a JSON-lines file, safely.

    Args:
        path: the ``.jsonl`` file (created with its directory when missing).
        resume_step: when a run restarts from the checkpoint of this step,
            records of later steps (measured by the run that did not finish)
            are dropped, rewriting the file through a temporary file.
    """

    def __init__(self, path: str, resume_step=None):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        if not os.path.exists(path):
            return
        lines, end = _complete_lines(path)
        if resume_step is not None:
            kept = [line for line in lines if not _is_after(line, int(resume_step))]
            if len(kept) != len(lines) or end != os.path.getsize(path):
                _rewrite(path, kept)
        elif end != os.path.getsize(path):
            with open(path, "r+b") as file:  # cut a torn last line off
                file.truncate(end)

    def append(self, similarity: GradientSimilarity) -> None:
        line = (json.dumps(similarity.to_json(), allow_nan=False) + "\n").encode("utf-8")
        with open(self.path, "ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


def _is_after(line: bytes, step: int) -> bool:
    try:
        record_step = json.loads(line).get("step")
    except (json.JSONDecodeError, AttributeError):
        return False  # leave unreadable lines for read_similarity_log to report
    return record_step is not None and record_step > step


def _rewrite(path: str, lines: list) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(b"".join(line + b"\n" for line in lines))
        file.flush()
        os.fsync(file.fileno())
