"""User-facing errors: one clear message naming the file and the fix, no traceback."""


class Lab4dError(Exception):
    """An error caused by the user's input (files, configs, flags), not by a bug.

    The CLI prints only the message and exits with status 2, so the message must
    name the offending file or key and say how to fix it.
    """
