"""Fixtures of the licensing API tests (shared with the LicenseClient's live tests)."""

from licensing_data import in_days, make_license, sql  # noqa: F401
