"""The exception tree: every error the library raises derives from `ScanError`."""

from __future__ import annotations


class ScanError(Exception):
    """Something smtplogscan cannot do; the message is fit for a user."""


class InputError(ScanError):
    """An input cannot be opened or read to its end."""


class FormatError(ScanError):
    """No grammar recognises an input, or the one asked for does not exist."""


class GrammarLoadError(ScanError):
    """A grammar plugin could not be loaded; the others still are."""


class GrammarError(ScanError):
    """A grammar failed while it read an input; the other inputs still are read."""


class CatalogueError(ScanError):
    """The cause catalogue is malformed."""


class UsageError(ScanError):
    """An option's value cannot be used."""


class MailError(ScanError):
    """The report could not be handed to the mail server or to sendmail."""


class StoreError(ScanError):
    """The history store cannot be read or written."""
