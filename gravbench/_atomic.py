"""The one atomic writer of report text (Markdown, JSON); PNGs go through :func:`gravbench._mpl.save_png`.

A report file is either the old one or the new one, never half written: the text
goes to a temporary file in the same directory, is flushed to disk and renamed
into place.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["atomic_write_text"]


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically (a temporary file in the same directory, then ``os.replace``).

    The temporary file is removed when writing fails, so nothing is left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
