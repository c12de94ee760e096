"""The one exception type for user mistakes (bad files, bad arguments).

The CLI turns an `RvosError` into a single red line and exit code 2; anything else is a bug.
"""


class RvosError(Exception):
    """A user-facing error: the message names the file or argument and what was expected."""
