"""Errors the classifier reports to its callers (the CLI turns them into exit code 2)."""

from __future__ import annotations


class ClassifierError(Exception):
    """Base class: a problem the user can fix (bad input file, bad model folder)."""


class DataError(ClassifierError):
    """The training or evaluation data cannot be used as given."""


class ModelFormatError(ClassifierError):
    """A model folder is missing, damaged or written by an incompatible format version."""
