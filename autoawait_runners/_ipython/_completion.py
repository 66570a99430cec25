"""Completion of the extension's magics' arguments (S3): only those, not every Python name
jedi knows. Each magic says what it takes (``Extension.complete``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._extension import Extension


def install(extension: Extension) -> None:
    extension.changes.append(extension.shell.Completer.custom_matchers, _matcher(extension))


def _matcher(extension: Extension) -> Any:
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()  # type: ignore[untyped-decorator]
    def complete_magic_arguments(context: Any) -> dict[str, Any]:
        words = context.line_with_cursor.lstrip().split()
        typed = context.token
        if typed:
            words = words[:-1]
        if not words or (magic := words[0].lstrip("%")) not in extension.complete:
            return {"completions": [], "suppress": False}
        options = extension.complete[magic](words[1:])
        return {
            "completions": [
                SimpleCompletion(text=option, type="argument")
                for option in options
                if option.startswith(typed)
            ],
            "suppress": True,
        }

    return complete_magic_arguments
