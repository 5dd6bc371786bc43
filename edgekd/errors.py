"""The one exception type the CLI turns into a clean message (no traceback) and exit code 2."""


class EdgekdError(Exception):
    """A user-facing problem: bad input, a missing file, an unknown option. The message names it."""


class DataError(EdgekdError):
    """A recording or WindowSet that cannot be read or fails validation; the message names the file."""
