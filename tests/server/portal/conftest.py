from licensing_data import make_license, sql  # noqa: F401
from people import cheap_argon2  # noqa: F401
