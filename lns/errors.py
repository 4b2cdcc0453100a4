"""The project's user-facing error type."""


class LNSError(Exception):
    """A problem the user can fix: the message names what is wrong and how to fix it.

    Entry points catch it and print the message as one paragraph, without a traceback.
    """
