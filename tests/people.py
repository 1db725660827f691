"""Names kept for the imports written before tests/factories.py
(``from people import API, PASSWORD, add_user, cheap_argon2, signup``). New tests import
from factories. The ``cheap_argon2`` fixture lives in tests/conftest.py; the name here is the
plain helper it calls, so that such an import still works (pytest takes fixtures from
conftest.py and ignores it)."""

from factories import API, PASSWORD, add_user, signup
from factories import use_cheap_argon2 as cheap_argon2

__all__ = ["API", "PASSWORD", "add_user", "cheap_argon2", "signup"]
