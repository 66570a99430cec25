"""``autoawait-ipython``, and ``python -m autoawait_runners``: IPython with the extension loaded
and a runner selected, in one command, as ``python -m asyncio`` starts an asyncio REPL.

The first argument is a runner if the catalogue has that name, whatever the current folder
holds (a trio checkout beside it is a folder named ``trio``); anything else means what it
means to ``ipython`` (a script to run, ``-i``, ``-c``, ``--profile``...): a script named as a
runner is ``./trio``. ``--runner NAME`` says it in a way that cannot be taken for a script.
A runner the catalogue does not have, or whose library is missing, is an error before
IPython starts (exit status 2).
"""

from __future__ import annotations

import difflib
import os
import sys

PROGRAM = "autoawait-ipython"

USAGE = f"""\
usage: {PROGRAM} [RUNNER | --runner RUNNER] [IPython options] [script.py [args]]
       {PROGRAM} --list | --help

IPython with autoawait_runners loaded and RUNNER selected (asyncio by default): top-level
await runs on one loop for the whole session, and background tasks live on between cells.

  RUNNER, --runner RUNNER  a runner of the catalogue (--list); the first argument is taken
                           for one if the catalogue has that name (a script of that
                           name: ./NAME)
  --list                   the catalogue: name, library, installed, description
  --help                   this, then IPython's own options

Everything else is IPython's: script.py runs (-i: the prompt after it), -c CODE runs code,
--profile=NAME, and every option below.
"""

#: Exit status for a command line that cannot be run (as argparse's).
USAGE_ERROR = 2


class _CommandLineError(Exception):
    """What is wrong with the command line, in one line."""


def main(argv: list[str] | None = None) -> int:
    """Start IPython with the extension; the console script ``autoawait-ipython`` too."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and _subcommand(args[0]):  # ipython profile ..., ipython history ...: as they are
        _start_ipython(args)
        return 0
    try:
        runner, ipython_args, action = _parse(args)
        if action == "list":
            print(_catalogue_table())
            return 0
        if action == "help":
            print(USAGE)
            print(_catalogue_table(), end="\n\nIPython's options:\n\n")
            sys.stdout.flush()
        elif runner is not None:
            _check_runner(runner)
    except _CommandLineError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    options = ["--ext=autoawait_runners"]  # as well as any extension the config file loads
    if action == "help":
        options.append("--help")
    elif runner is not None:
        options.append(f"--AutoawaitRunners.default={runner}")
    _start_ipython(options + ipython_args)
    return 0


def _start_ipython(argv: list[str]) -> None:
    """IPython's ``start_ipython``, with the extension's options among the app's own, so
    that ``--help-all`` lists them and the command line takes them as IPython's."""
    from IPython.terminal.ipapp import TerminalIPythonApp

    from ._ipython._config import AutoawaitRunners
    from ._ipython._extension import active_runner

    class App(TerminalIPythonApp):
        def init_extensions(self) -> None:
            super().init_extensions()
            # Under IPython's banner, when it shows one (before extensions load): the runner
            # the session has once loading is done: the configured default (command line,
            # config file), or IPython's own if that one could not start.
            if self.display_banner and self.interact and self.shell is not None:
                said = active_runner(self.shell)
                if said is not None:
                    print(f"\nautoawait_runners: {said}", flush=True)

    app = App.instance()
    if AutoawaitRunners not in app.classes:
        app.classes.append(AutoawaitRunners)
    app.initialize(argv)
    app.start()


def _parse(args: list[str]) -> tuple[str | None, list[str], str | None]:
    """(runner, IPython's arguments, "list" or "help" or None). Options are looked for only
    before the first argument that is not one (a script's own arguments are the script's)."""
    runner: str | None = None
    action: str | None = None
    rest: list[str] = []
    if args and not args[0].startswith("-"):
        if args[0] in _catalogue_names():  # a file or folder of that name too (./NAME is it)
            runner = args.pop(0)
        elif not _is_a_script(args[0]):
            raise _CommandLineError(_unknown(args[0]))
    while args:
        arg = args.pop(0)
        if not arg.startswith("-"):
            rest += [arg, *args]  # a script and its arguments, or an option's value
            break
        if arg in ("--help", "-h"):
            action = "help"
        elif arg in ("--list", "-l"):
            action = "list"
        elif arg == "--runner" or arg.startswith("--runner="):
            name = arg.partition("=")[2] if "=" in arg else (args.pop(0) if args else "")
            if not name:
                raise _CommandLineError("--runner needs a runner's name (--list shows them)")
            if name not in _catalogue_names():
                raise _CommandLineError(_unknown(name))
            runner = name
        else:
            rest.append(arg)
    return runner, rest, action


def _is_a_script(arg: str) -> bool:
    """Whether IPython would take ``arg`` for a file to run."""
    return os.path.exists(arg) or arg.endswith((".py", ".ipy", ".ipynb"))


def _subcommand(arg: str) -> bool:
    """Whether ``arg`` is one of IPython's subcommands (``profile``, ``history``...)."""
    from IPython.terminal.ipapp import TerminalIPythonApp

    return arg in TerminalIPythonApp.subcommands


def _catalogue_names() -> list[str]:
    from ._ipython._catalogue import Catalogue

    return [name for name in Catalogue() if name != "kernel"]


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, _catalogue_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown runner {name!r}{hint} (--list shows them all)"


def _check_runner(name: str) -> None:
    """A runner that cannot start here (its library is missing) is an error now, not a
    warning in a session that then runs another."""
    from ._ipython._catalogue import Catalogue

    entry = Catalogue()[name]
    if entry.error is None and entry.installed:
        return
    if entry.error is not None:
        raise _CommandLineError(f"the {name} runner cannot be loaded ({entry.error})")
    raise _CommandLineError(
        f"the {name} runner needs {entry.library}, which is not installed: {entry.install_command}"
    )


def _catalogue_table() -> str:
    from ._ipython._autoawait_magic import catalogue_table
    from ._ipython._catalogue import Catalogue

    return catalogue_table(Catalogue(), in_kernel=False, active=None)


if __name__ == "__main__":
    sys.exit(main())
