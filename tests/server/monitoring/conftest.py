"""Fixtures of the metrics tests."""

from licensing_data import make_license  # noqa: F401
