"""The one home of command-line option validation: every ``gravbench`` command checks its values here.

Each check raises :class:`gravbench.cli.UserError` (exit code 2, one line naming the *option*, never the
library argument) and runs before any work starts. ``library(opt, fn, *args)`` runs a library validator and
renames its ``ValueError`` after the option, so the rule itself keeps one home in the library.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

__all__ = ["number", "integer", "choice", "library", "writable_dir", "out_dir", "out_file"]


def _err(msg):
    from . import UserError

    return UserError(msg)


def number(opt, value, *, gt=None, ge=None, what=""):
    """``value`` as a finite float, ``> gt`` / ``>= ge`` when given (None passes through)."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _err(f"{opt} must be a number{what}, got {value!r}") from None
    bound = f" > {gt:g}" if gt is not None else (f" >= {ge:g}" if ge is not None else "")
    if not math.isfinite(v) or (gt is not None and not v > gt) or (ge is not None and not v >= ge):
        raise _err(f"{opt} must be a finite number{bound}{what}, got {value}")
    return v


def integer(opt, value, *, minimum=None, what=""):
    """``value`` as an int ``>= minimum`` (None passes through)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(f"{opt} must be an integer{what}, got {value!r}")
    if minimum is not None and value < minimum:
        raise _err(f"{opt} must be an integer >= {minimum}{what}, got {value}")
    return value


def choice(opt, value, choices):
    """``value`` when it is one of ``choices``."""
    if value not in choices:
        raise _err(f"{opt} must be one of {', '.join(str(c) for c in choices)}, got {value!r}")
    return value


def library(opt, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; its ``ValueError`` becomes a usage error named after ``opt``."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise _err(f"{opt}: {exc}") from None


def writable_dir(opt, d, *, create=True):
    """Make sure ``d`` is (or can become) a directory this process can write into: really creating a file
    there (``os.access`` answers yes for root on a read-only mount)."""
    d = Path(d)
    if d.exists() and not d.is_dir():
        raise _err(f"{opt}: {d} exists and is not a directory")
    if not d.exists():
        if not create:
            raise _err(f"{opt}: directory {d} does not exist")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _err(f"{opt}: cannot create directory {d} ({exc.strerror or exc})") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".gravbench-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _err(f"{opt}: directory {d} is not writable ({exc.strerror or exc})") from None
    return d


def out_dir(opt, d):
    """An output directory: not an existing file, writable; when missing, its nearest existing parent must
    be a writable directory (nothing is created here, so a run refused later leaves no empty folder)."""
    d = Path(d)
    if d.exists():
        return writable_dir(opt, d, create=False)
    parent = d.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise _err(f"{opt}: cannot create directory {d}: {parent} is not a directory")
    writable_dir(opt, parent, create=False)
    return d


def out_file(opt, path, *, suffix=None, ours=None):
    """An output file: its folder exists and is writable, it is not a directory, it has ``suffix`` and,
    when it exists, ``ours(path)`` says gravbench wrote it (a foreign file is never overwritten)."""
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise _err(f"{opt} must name a {suffix} file, got {path}")
    if path.is_dir():
        raise _err(f"{opt}: {path} is a directory; expected a file name")
    writable_dir(opt, path.parent, create=False)
    if path.exists():
        if ours is not None and not ours(path):
            raise _err(f"{opt}: {path} exists and was not written by gravbench; choose another file or remove it")
        if not os.access(path, os.W_OK):
            raise _err(f"{opt}: {path} is read-only")
    return path
