"""The project's user-facing error type and warning categories."""


class LNSError(Exception):
    """A problem the user can fix: the message names what is wrong and how to fix it.

    Entry points catch it and print the message as one paragraph, without a traceback.
    """


class PrecisionWarning(UserWarning):
    """The arithmetic did not resolve the latent noise: most of the decoder's response to it is rounding (a model in
    half precision, a decoder that casts inside, a backend that rounds float32, or a noise std too small for the
    dtype), so the labels say little about the method. The message names the measured resolution and the fixes."""
