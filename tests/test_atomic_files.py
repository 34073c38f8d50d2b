"""Atomic files and directories: complete or absent, never half-written."""

import os

import pytest

from tf_metaling.atomic_files import atomic_directory, atomic_write_lines, atomic_write_text


def _write(directory, name, text):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as file:
        file.write(text)


def test_text_and_lines_are_written_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "sub" / "notes.txt")
    assert atomic_write_text(path, "one\ntwo\n") == path
    assert atomic_write_lines(path, ["a", "b"]) == 2
    assert open(path, encoding="utf-8").read() == "a\nb\n"
    with pytest.raises(ValueError, match="Line 2 for .*notes.txt contains a line break"):
        atomic_write_lines(path, ["c", "d\ne"])
    assert open(path, encoding="utf-8").read() == "a\nb\n"
    assert os.listdir(tmp_path / "sub") == ["notes.txt"]


def test_directory_keeps_an_existing_copy_unless_asked_to_replace_it(tmp_path):
    path = str(tmp_path / "cache")
    with atomic_directory(path) as staging:
        _write(staging, "first.txt", "1")
    with atomic_directory(path) as staging:  # another process finished first: its copy stays
        _write(staging, "second.txt", "2")
    assert os.listdir(path) == ["first.txt"]
    with atomic_directory(path, replace=True) as staging:
        _write(staging, "second.txt", "2")
    assert os.listdir(path) == ["second.txt"]
    with pytest.raises(RuntimeError, match="failed"), atomic_directory(path, replace=True) as staging:
        _write(staging, "third.txt", "3")
        raise RuntimeError("failed")
    assert os.listdir(path) == ["second.txt"]
    assert os.listdir(tmp_path) == ["cache"]  # no staging or old copy left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask
