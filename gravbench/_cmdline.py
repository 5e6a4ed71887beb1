"""The one builder of "the command line that made this", recorded in reports and manifests."""

from __future__ import annotations

import os
import sys

__all__ = ["command_line", "process_command"]


def _fmt(value):
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def process_command():
    """The command line of this process, as a string (``gravbench train ...`` when run from the CLI).

    Recorded when a library call was not given the command that made it (e.g. training
    started from a Python script records ``python script.py``).
    """
    argv = list(sys.argv)
    if argv and os.path.basename(argv[0]) in ("gravbench", "__main__.py"):
        argv[0] = "gravbench"
    return " ".join(argv)


def command_line(prog, options):
    """The canonical command line that reproduces a run: ``prog`` plus each option not at its default.

    Parameters
    ----------
    prog : str
        The command and its positional part (``"gravbench compare --n 50 100"``).
    options : iterable of (flag, value, default)
        An option is written as ``flag value`` when ``value`` is not None and differs
        from ``default``; floats as ``%g``, lists and tuples comma-joined; ``True`` is
        written as the bare ``flag`` (a switch) and ``False`` not at all. A flag given
        several times (``--weights``, ``-o``) is several entries.

    Examples
    --------
    >>> command_line("gravbench compare --n 50", [("--samples", 8, 32), ("--noise", 0.01, 0.01)])
    'gravbench compare --n 50 --samples 8'
    >>> command_line("gravbench train cnn", [("--resume", True, False), ("-o", "depth=4", None)])
    'gravbench train cnn --resume -o depth=4'
    """
    parts = [prog]
    for flag, value, default in options:
        if value is None or value is False or value == default:
            continue
        parts.append(flag if value is True else f"{flag} {_fmt(value)}")
    return " ".join(parts)
