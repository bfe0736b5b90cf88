"""Exceptions that the CLI turns into one line and exit status 2."""


class ZoomkitError(Exception):
    """A user mistake (unknown name, missing path, bad config): one line, exit status 2."""


class DuplicateComponentError(ZoomkitError):
    """Two plugins registered a component under the same name."""


class MissingWeightsError(ZoomkitError):
    """A model's weights are neither in a local cache nor at the given path."""
