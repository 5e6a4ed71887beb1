"""The ``gravbench`` command line: thin typer/rich commands over the library.

Commands live in modules named ``cmd_*.py`` in this package; each defines
``register(app, report_app)`` and is discovered at start-up, so adding a
command never touches this file. Commands import heavy modules (numba
kernels, torch, dask) inside their bodies, so ``gravbench --help`` stays fast.

Errors: a :class:`UserError` (or ``ValueError`` from the library) prints one
red line on stderr and exits 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

__all__ = ["app", "report_app", "main", "UserError", "console", "err_console", "state"]


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 1."""


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


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
):
    state.debug = debug
    if version:
        from .. import __version__

        typer.echo(f"gravbench {__version__}")
        raise typer.Exit(0)


def _register_commands():
    pkg = sys.modules[__name__]
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            mod = importlib.import_module(f"{__name__}.{info.name}")
            mod.register(app, report_app)


_register_commands()


def main(argv=None):
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:
        state.debug = True
    try:
        rv = app(args=argv, standalone_mode=False)  # typer returns 130 on Ctrl-C and the code of typer.Exit(n)
        if isinstance(rv, int) and not isinstance(rv, bool) and rv:
            return rv
    except SystemExit as exc:  # typer.Exit inside standalone_mode=False
        return exc.code or 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]Aborted.[/red]")
        return 130
    except KeyboardInterrupt:
        err_console.print("[red]Interrupted.[/red]")
        return 130
    except Exception as exc:  # noqa: BLE001
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if state.debug:
            raise
        if isinstance(exc, (UserError, ValueError, FileNotFoundError, PermissionError, KeyError, ImportError)):
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err_console.print(f"[bold red]error:[/bold red] {msg}", highlight=False, soft_wrap=True)
            return 1
        err_console.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {exc} (rerun with --debug)",
                          highlight=False)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _entry():
    sys.exit(main())
