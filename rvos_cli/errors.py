"""The one exception type for user mistakes (bad files, bad arguments).

The CLI turns an `RvosError` into a single red line and exit code 2; anything else is a bug.
"""


class RvosError(Exception):
    """A user-facing error: the message names the file or argument and what was expected."""


def shown(name: object) -> str:
    """A name from a data file as an error message shows it: as is when printable, else quoted.

    Takes any key or value read from a file; returns `str(name)` when it is printable text, and its
    `repr` otherwise, so a newline or control character in a video id cannot split the one-line error.
    """
    text = str(name)
    return text if text.isprintable() else repr(text)
