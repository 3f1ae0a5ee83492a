"""The errors a user can cause: bad input, a missing or broken file, a wrong setting.

Every one of them subclasses :class:`MusesError`. The command line catches ``MusesError``
alone, prints its message and exits with its ``exit_code``; any other exception is a bug
and shows its traceback.
"""


class MusesError(Exception):
    """Base of every error a user can cause; the message says what is wrong and what to do."""

    exit_code = 2  # bad usage or bad input


class RunFailed(MusesError):
    """The input was fine but the run could not finish (disk full, a locked database, ...)."""

    exit_code = 1
