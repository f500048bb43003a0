"""Secrets the platform must use again (webhook signing secrets, provider credentials) are kept encrypted.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with the key FIELD_ENCRYPTION_KEY, or one derived
from SECRET_KEY when that is unset. Changing the key makes stored secrets unreadable: rotate them after.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet() -> Fernet:
    if settings.FIELD_ENCRYPTION_KEY:
        return Fernet(settings.FIELD_ENCRYPTION_KEY.encode())
    derived = hashlib.sha256(b"switchboard field encryption:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ValueError("the stored secret cannot be decrypted with the current key") from error
