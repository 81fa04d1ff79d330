import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories set a password on every user; PBKDF2 makes that half a second each on a small machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
