"""The one atomic writer of report text (Markdown, JSON); PNGs go through :func:`gravbench._mpl.save_png`.

A report file is either the old one or the new one, never half written: the text
goes to a temporary file in the same directory, is flushed to disk and renamed
into place. Resumable reports keep their records as JSON Lines:
:func:`append_jsonl` adds one record and syncs it to disk, :func:`read_jsonl`
reads them back, skipping a line cut by a killed run (that case runs again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["atomic_write_text", "append_jsonl", "read_jsonl"]


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


def append_jsonl(path, rec):
    """Append the record ``rec`` (a JSON-serialisable dict; numpy scalars as floats) to ``path``, synced to disk."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path):
    """The records of a JSON Lines file, in order ([] when it does not exist); unreadable lines are skipped."""
    path = Path(path)
    recs = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line:
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return recs
