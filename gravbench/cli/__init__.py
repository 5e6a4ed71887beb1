"""The ``gravbench`` command line: thin typer/rich commands over the library.

Commands live in modules named ``cmd_*.py`` in this package; each defines
``register(app, report_app)`` and is discovered at start-up, so adding a
command never touches this file. Commands import heavy modules (numba
kernels, torch, dask) inside their bodies, so ``gravbench --help`` stays fast.

Errors and exit codes (nothing prints a traceback unless ``--debug``):

* ``0``: success; also ``--help``, ``--version`` and a bare ``gravbench`` /
  ``gravbench data`` / ``gravbench report`` (these print their help on stdout).
* ``2``: a usage error: an unknown command or option, a missing or invalid
  option value (``--n abc``, ``--n 0``, ``--noise inf``). One line on stderr
  naming the option and what it expects.
* ``1``: the run failed: a library ``ValueError`` / ``OSError`` / ``ImportError``
  (one line), a sweep with failed cases (``compare`` prints how many), or an
  internal error (a bug): one line with the exception, plus the path of a file
  holding the full traceback (``--debug`` raises it instead).
* ``130``: interrupted (Ctrl-C).

Only typer's own API is used for its exceptions (``typer.TyperException``),
so no undeclared package (such as ``click``) is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from .. import __version__
from .._cmdline import command_line

__all__ = ["app", "report_app", "main", "UserError", "RunFailed", "console", "err_console", "state", "command_line"]


class UserError(Exception):
    """A usage error (a bad option value, a missing input file): one line on stderr, exit code 2.

    Parameters
    ----------
    message : str
        One line naming the option and the value it expects.
    exit_code : int, optional
        Default 2 (usage); see :class:`RunFailed` for 1.
    """

    exit_code = 2

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = int(exit_code)


class RunFailed(UserError):
    """A run that failed (or finished with failed cases): one line on stderr, exit code 1."""

    exit_code = 1


class _State:
    debug = False


state = _State()

app = typer.Typer(
    name="gravbench",
    help="2D gravity inversion: forward operators, refiners, ML providers and benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
report_app = typer.Typer(help="Regenerate the committed reports under reports/.", no_args_is_help=True)
app.add_typer(report_app, name="report")


def _consoles():
    import os

    from rich.console import Console

    # rich falls back to 80 columns when output is piped or logged; the ranking tables need more.
    width = None if (sys.stdout.isatty() or os.environ.get("COLUMNS")) else 160
    return Console(width=width), Console(stderr=True, width=width)


class _LazyConsole:
    def __init__(self, idx):
        self._idx = idx
        self._c = None

    def __getattr__(self, name):
        if self._c is None:
            self._c = _consoles()[self._idx]
        return getattr(self._c, name)


console = _LazyConsole(0)
err_console = _LazyConsole(1)


def _version_callback(value: bool):
    if value:
        typer.echo(f"gravbench {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_version_callback),
):
    state.debug = debug


def _register_commands():
    pkg = sys.modules[__name__]
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            mod = importlib.import_module(f"{__name__}.{info.name}")
            mod.register(app, report_app)


_register_commands()


def _is_typer_error(exc):
    """A usage/parse error raised by typer's bundled command-line parser (its public ``TyperException``)."""
    base = getattr(typer, "TyperException", None)
    if base is not None and isinstance(exc, base):
        return True
    # older typer re-raises its parser's ClickException; recognise it without importing that package
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__)


def _one_line(text):
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


def _print_error(msg):
    err_console.print(f"[bold red]error:[/bold red] {msg}", highlight=False, soft_wrap=True, markup=True)


def _escape(text):
    from rich.markup import escape

    return escape(text)


def _usage_error(exc):
    """One line for a parse error of the command line; returns the exit code."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `gravbench` / `gravbench data`: the help, exit 0
        ctx = getattr(exc, "ctx", None)
        typer.echo(ctx.get_help() if ctx is not None else str(exc))
        return 0
    try:
        msg = exc.format_message()
    except Exception:  # noqa: BLE001
        msg = str(exc)
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "gravbench"
    if path.split()[0] != "gravbench":
        path = " ".join(["gravbench"] + path.split()[1:])
    _print_error(_escape(f"{_one_line(msg)} (see '{path} --help')"))
    code = getattr(exc, "exit_code", 2)
    return code if isinstance(code, int) and code else 2


def _crash_file(exc):
    """Write the traceback of an internal error to a file; return its path (or None)."""
    import datetime
    import os
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.environ.get("GRAVBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gravbench")
    for d in (os.path.join(base, "crash"), tempfile.gettempdir()):
        try:
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, f"gravbench-crash-{stamp}-{os.getpid()}.txt")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(f"gravbench {__version__}; python {sys.version.split()[0]}; argv {sys.argv!r}\n\n{text}")
            return path
        except OSError:
            continue
    return None


def main(argv=None):
    """Console-script entry point; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    state.debug = "--debug" in argv
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="gravbench")
        if isinstance(rv, int) and not isinstance(rv, bool) and rv:
            return rv
    except SystemExit as exc:  # typer.Exit inside standalone_mode=False
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]Aborted.[/red]")
        return 130
    except KeyboardInterrupt:
        err_console.print("[red]Interrupted.[/red]")
        return 130
    except Exception as exc:  # noqa: BLE001
        if _is_typer_error(exc):
            return _usage_error(exc)
        if state.debug:
            raise
        if isinstance(exc, UserError):
            _print_error(_escape(_one_line(exc) or type(exc).__name__))
            return exc.exit_code
        if isinstance(exc, (ValueError, OSError, ImportError)):
            msg = _one_line(exc) if str(exc).strip() else type(exc).__name__
            _print_error(_escape(msg))
            return 1
        where = _crash_file(exc)
        msg = f"{type(exc).__name__}: {_one_line(exc)}" if str(exc).strip() else type(exc).__name__
        tail = f"full traceback in {where}" if where else "the traceback could not be written"
        err_console.print(_escape(f"internal error (a bug in gravbench {__version__}): {msg}; {tail}; "
                                  "rerun with --debug to show it"), style="bold red", highlight=False,
                          soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _entry():
    sys.exit(main())
