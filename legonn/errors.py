"""Errors shared across legonn."""


class LegonnError(Exception):
    """A user-facing error: one clear line, non-zero exit.

    Raise it for problems the user can fix (a missing file, a bad option, an
    incompatible checkpoint).  The ``legonn`` command prints it as
    ``legonn <cmd>: error: <message>`` on one line, without a traceback, and
    exits with status 1.  Anything else that escapes is a bug and keeps its
    traceback.
    """
