"""Secrets the platform must use again (webhook signing secrets, provider credentials) are kept encrypted.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with the keys FIELD_ENCRYPTION_KEYS: the first
encrypts, every one decrypts, so a new key goes first and the old one stays until secrets are re-encrypted.
Without keys, one is derived from SECRET_KEY (then changing SECRET_KEY makes stored secrets unreadable).
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    if settings.FIELD_ENCRYPTION_KEYS:
        return MultiFernet([Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS])
    derived = hashlib.sha256(b"switchboard field encryption:" + settings.SECRET_KEY.encode()).digest()
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ValueError("the stored secret cannot be decrypted with the current key") from error
