"""Safe, atomic file writes shared by derive/ (generated modules) and runtime/ (outputs).

Every file the library writes into a user-visible folder goes through here (the fit outputs
are first written into a private ``mkdtemp`` staging folder, then moved into place with
``os.replace``). A write never opens the destination, nor a predictable temporary name beside
it: a temporary file is created *exclusively*
(``O_CREAT | O_EXCL`` with a random name, via :func:`tempfile.mkstemp`) in the destination's
folder, written, flushed to disk (fsync), and renamed over the destination with
:func:`os.replace`, which is atomic and replaces a symlink at the destination *itself*, never
its target. On any failure the temporary file is removed and the destination is untouched.

So a symlink planted at a temporary name (the old ``<name>.py.tmp``) is never followed, and
readers see either the old file or the complete new one. This module imports only the
standard library, so derive/ (no torch) and runtime/ (no SymPy) can both use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (no race with other
    threads); else by the set-and-restore idiom."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """Permissions for the new file: those of the file it replaces (a regular file only),
    else what ``open(path, "w")`` would give (0o666 minus the umask). ``mkstemp`` creates
    0o600 files, which would silently make generated modules private."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0o666 & ~_umask()
    if stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode)
    return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_in(path: Path) -> tuple[int, Path]:
    """An exclusively created, randomly named temporary file beside ``path``.

    The name keeps ``path``'s suffix last (``.x.png.k3j9_tmp.png``) so writers that infer a
    format from it (matplotlib's ``savefig``, ``torch.export.save``) see the right one, and it
    starts with a dot so a half-written file is hidden from a casual ``ls``.
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    return fd, Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path to write ``path``'s content to; on a clean exit it is
    fsync'ed and renamed over ``path``, on an exception it is removed.

    For writers that need a file name (``torch.save``, ``savefig``, ``np.save``). The yielded
    file already exists (empty, created exclusively): writers overwrite it in place.
    """
    path = Path(path)
    fd, tmp = _temp_in(path)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _final_mode(path))
        with open(tmp, "rb+") as fh:  # flush what the writer left in the page cache
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (exclusive random temp file, fsync, rename)."""
    path = Path(path)
    fd, tmp = _temp_in(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`); newlines are
    written as given (no platform translation), so output is byte-identical everywhere."""
    return atomic_write_bytes(path, text.encode(encoding))
