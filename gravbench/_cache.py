"""Where numba writes its on-disk cache (``@njit(cache=True)``).

Numba tries, in order: ``NUMBA_CACHE_DIR`` if set; ``__pycache__`` next to
the source file if writable; the user-wide cache ``~/.cache/numba`` (or
``$XDG_CACHE_HOME/numba``). A read-only install (site-packages owned by
root, a container image) therefore caches under ``$HOME``. When none of
these is writable (read-only install *and* no writable home, as in some CI
containers), numba refuses to define a cached function at import time; then,
and only then, :func:`ensure_cache_dir` points numba at
``<tempdir>/gravbench-numba-cache-<uid>`` (``tempfile.gettempdir()``), by
setting ``NUMBA_CACHE_DIR`` for this process. Set ``NUMBA_CACHE_DIR``
yourself to choose another place.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["ensure_cache_dir", "FALLBACK_PREFIX"]

FALLBACK_PREFIX = "gravbench-numba-cache-"


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def ensure_cache_dir(package_dir=None):
    """Make sure numba has a writable cache location; return the fallback used, or None.

    Parameters
    ----------
    package_dir : str, optional
        Directory of the cached sources (default: this package's directory).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    if os.access(package_dir, os.W_OK) and _writable(os.path.join(package_dir, "__pycache__")):
        return None
    try:
        from numba.misc.appdirs import AppDirs

        user = AppDirs(appname="numba", appauthor=False).user_cache_dir
    except Exception:  # pragma: no cover - numba internals moved
        user = os.path.join(os.path.expanduser("~"), ".cache", "numba")
    if _writable(user):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = os.path.join(tempfile.gettempdir(), f"{FALLBACK_PREFIX}{uid}")
    if not _writable(fallback):  # pragma: no cover - nowhere to write: numba raises its own error
        return None
    os.environ["NUMBA_CACHE_DIR"] = fallback
    from numba.core import config

    config.CACHE_DIR = fallback
    return fallback
