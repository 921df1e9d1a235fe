"""The error every record check raises."""

from __future__ import annotations


class RecordError(ValueError):
    """A record failed validation.

    Attributes
    ----------
    field : str
        The offending field, dotted for nested values (``"scores.retrieval"``).
    reason : str
        What was wrong, in words a user can act on.
    row : int or None
        The 0-based row of the batch it came from, when known.
    """

    def __init__(self, field: str, reason: str, row: int | None = None) -> None:
        self.field = field
        self.reason = reason
        self.row = row
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{where}{field}: {reason}")

    def at_row(self, row: int) -> RecordError:
        """The same error, located at ``row`` of a batch."""
        return RecordError(self.field, self.reason, row)
