"""Encryption at rest on top of django-encrypted-model-fields, made strict.

The library's fields hand back the stored ciphertext as if it were the value when the key is
wrong (it swallows InvalidToken). For a token broker that means serving ciphertext to Zoom or
Recall as a token. The fields here raise instead; accounts' EncryptionCanary row lets start-up,
every web process and /readyz tell a wrong key from a right one before any token is read.
"""

import hashlib
import hmac
from collections.abc import Iterator

import cryptography.fernet
from django.apps import apps
from django.db import models, transaction
from encrypted_model_fields import fields as encrypted_fields


class EncryptionKeyError(RuntimeError):
    """The stored value cannot be decrypted with any configured FIELD_ENCRYPTION_KEY."""


class _StrictDecryptMixin:
    name: str  # the field's, set by Django when the field is bound to its model

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return encrypted_fields.decrypt_str(value)
        except cryptography.fernet.InvalidToken:
            model = getattr(self, "model", None)
            where = f"{model._meta.label}.{self.name}" if model else self.name
            raise EncryptionKeyError(
                f"{where} cannot be decrypted with any FIELD_ENCRYPTION_KEY: the key is wrong or missing."
            ) from None


class StrictEncryptedTextField(_StrictDecryptMixin, encrypted_fields.EncryptedTextField):
    pass


def encrypted_fields_by_model() -> Iterator[tuple[type[models.Model], list[str]]]:
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, encrypted_fields.EncryptedMixin)]
        if names:
            yield model, names


def reencrypt_all(batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every encrypted column under the newest key (the first in the list).

    Rows are read and written back with update(), so that auto_now fields and save() side
    effects are left alone. Each model is one transaction: a failure leaves it as it was.
    """
    counts: dict[str, int] = {}
    for model, names in encrypted_fields_by_model():
        done = 0
        with transaction.atomic():
            pks = list(model._default_manager.values_list("pk", flat=True))
            for start in range(0, len(pks), batch_size):
                chunk = pks[start : start + batch_size]
                for row in model._default_manager.filter(pk__in=chunk).select_for_update().values("pk", *names):
                    pk = row.pop("pk")
                    # values() runs from_db_value, so these are plaintexts; update() re-encrypts.
                    model._default_manager.filter(pk=pk).update(**row)
                    done += 1
        counts[model._meta.label] = done
    return counts


def secret_hash(raw: str) -> str:
    """What the broker keeps of a secret it hands out (API keys, callback and connect-link
    secrets): its SHA-256, hex. The secrets are 256-bit random, so a plain hash is enough."""
    return hashlib.sha256(raw.encode()).hexdigest()


def secret_matches(raw: str, stored_hash: str) -> bool:
    """Constant-time check of a presented secret against its stored hash."""
    return bool(raw) and bool(stored_hash) and hmac.compare_digest(secret_hash(raw), stored_hash)
