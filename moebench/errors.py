"""Exception types. Input errors become one line on stderr and exit code 2 in the CLI."""

from __future__ import annotations


class MoebenchError(Exception):
    """Base class of every error moebench raises on purpose."""


class InputError(MoebenchError):
    """Bad user input (a file, a parameter, a method name).

    The CLI prints ``str(error)`` as one line and exits with code 2, never a traceback.

    Parameters
    ----------
    reason
        What is wrong, in words.
    file
        The file the input came from, if any.
    where
        The JSON path (``layers[3].activations.sets[7]``) or option name, if any.
    """

    def __init__(self, reason: str, *, file: str | None = None, where: str | None = None):
        self.reason = reason
        self.file = file
        self.where = where
        parts = [p for p in (file, where) if p]
        super().__init__(": ".join([*parts, reason]))

    def with_file(self, file: str) -> InputError:
        """Return the same error attributed to ``file``."""
        return InputError(self.reason, file=file, where=self.where)


class NotApplicableError(MoebenchError):
    """A method was asked to solve an instance outside its declared assumptions."""


class UnavailableError(MoebenchError):
    """An optional dependency (solver, library) is not installed."""
