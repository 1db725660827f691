"""The license rows the LicenseClient's live tests need (shared with the licensing tests)."""

from licensing_data import make_license, sql  # noqa: F401
