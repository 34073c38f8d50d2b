"""Writing files and directories so that readers never see a half-written one.

Everything tf_metaling writes (vocabularies, TFRecords, the package caches,
model configs, results, reports, weights) goes to a temporary name in the
destination directory first and is renamed into place, which is atomic on
POSIX file systems. A failure removes the temporary entry and leaves what was
there before untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

# mkstemp/mkdtemp create private (0600/0700) entries; published files get the
# permissions an ordinary open() would give them.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` on success."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_text(path, text: str) -> str:
    """Writes `text` (UTF-8, ``\\n`` line ends) to `path`; returns `path`."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return path


def atomic_write_lines(path, lines) -> int:
    """Writes one line per item (which must not contain newlines); returns the count."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ValueError(f"Line {count + 1} for {path} contains a line break: {line!r}")
            f.write(line)
            f.write("\n")
            count += 1
    return count


@contextlib.contextmanager
def atomic_directory(path, replace: bool = False):
    """Yields a temporary directory beside `path`; renames it to `path` on success.

    If `path` exists when the directory is complete: without `replace` the
    new copy is discarded and the existing one kept (another process built the
    same cache first); with `replace` the existing directory is moved aside,
    the new one renamed into place and the old one deleted (restored if the
    rename fails).
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if replace and os.path.isdir(path):
            _swap_directory(tmp, path, parent)
            return
        try:
            os.rename(tmp, path)
        except OSError:
            if not os.path.isdir(path):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_directory(new: str, path: str, parent: str) -> None:
    old = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".old.", dir=parent)
    os.rmdir(old)  # only its unique name is needed
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
