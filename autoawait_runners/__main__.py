"""``python -m autoawait_runners [RUNNER] [IPython options]``: IPython with the extension
loaded and RUNNER selected (``asyncio`` by default), in one command, as ``python -m
asyncio`` starts an asyncio REPL. Options after RUNNER are IPython's."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Start IPython with the extension; the console script ``autoawait-ipython`` too."""
    from IPython import start_ipython

    args = list(sys.argv[1:] if argv is None else argv)
    options = ["--ext=autoawait_runners"]  # as well as any extension the config file loads
    if args and not args[0].startswith("-"):
        options.append(f"--AutoawaitRunners.default={args.pop(0)}")
    start_ipython(argv=options + args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
