"""The project's one error style: every error says what was wrong, where (file, key, port, variant,
transcript) and what to do about it.

``TinyMightyError`` is the base of every error the project raises on purpose: ``ConfigError`` (a config key),
``InputError`` (an input file, directory, archive or URL), ``UnsupportedModelError`` (a model the code
generator cannot compile), ``FirmwareBuildError`` and ``DeviceError`` (the device and its transcript). Where
the project calls a library that can fail on bad input (wave, tarfile, urllib, the flatbuffer reader), the
library's exception is wrapped in one of these with ``raise ... from err``, so the cause stays chained.
Each also derives from the built-in class callers caught before (ValueError, RuntimeError).

A workflow step's script that stops on one of these prints ``describe(err)`` alone (``_print_project_error``),
as the failed job's log does: the message is the answer, and a traceback above it reads like a crash.
"""

import sys


class TinyMightyError(Exception):
    """Base of the project's errors; the message names the input and says what to do."""


class InputError(TinyMightyError, ValueError):
    """An input file, directory, archive or URL is missing, unreadable or malformed."""


def describe(err: BaseException) -> str:
    """An error as the user reads it: its kind and message, and the chained cause on a line of its own."""
    cause = f"\n(cause: {type(err.__cause__).__name__}: {err.__cause__})" if err.__cause__ else ""
    return f"{type(err).__name__}: {err}{cause}"


def _print_project_error(kind, err, tb, _default=sys.excepthook):
    if not issubclass(kind, TinyMightyError):
        return _default(kind, err, tb)
    print(describe(err), file=sys.stderr)


sys.excepthook = _print_project_error
