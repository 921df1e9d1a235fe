"""The errors of experiment operations (:mod:`rewardloop.loop.experiments` raises them)."""


class ExperimentError(ValueError):
    """An experiment operation was refused; the message says what was wrong. Nothing changed."""


class ExperimentNotFound(ExperimentError, LookupError):
    """No experiment of that name (the CLI exits 3 on it)."""


__all__ = ["ExperimentError", "ExperimentNotFound"]
