"""Fixtures of the keyless trial tests."""

from licensing_data import in_days, make_license, sql  # noqa: F401
