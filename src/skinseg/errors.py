"""Errors raised for bad input.

Every message names the file or layer at fault and says what to do about it.
"""


class SkinsegInputError(ValueError):
    """Bad input: an unreadable file, wrong dimensions, NaN, mismatched shapes, ..."""
