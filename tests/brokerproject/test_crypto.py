import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import call_command
from django.db import connection
from encrypted_model_fields import fields as encrypted_fields

from accounts.models import EncryptionCanary
from brokerproject.crypto import EncryptionKeyError
from zoomauth.models import ZoomApp

KEY_A = Fernet.generate_key()
KEY_B = Fernet.generate_key()


@pytest.fixture
def use_keys(monkeypatch):
    """Swap the library's key set, as a restart with another FIELD_ENCRYPTION_KEY would."""

    def _use(*keys):
        monkeypatch.setattr(encrypted_fields, "CRYPTER", MultiFernet([Fernet(k) for k in keys]))

    return _use


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed names
        return cursor.fetchone()[0]


def test_secret_is_encrypted_in_the_database_and_read_back(db):
    app = ZoomApp.objects.create(name="Main", client_id="cid", client_secret="very-secret-value")
    stored = raw_column("zoomauth_zoomapp", "client_secret", app.pk)
    assert "very-secret-value" not in stored
    assert stored.startswith("gAAAA")
    assert ZoomApp.objects.get(pk=app.pk).client_secret == "very-secret-value"


def test_wrong_key_is_detected_not_served_as_ciphertext(db, use_keys):
    use_keys(KEY_A)
    assert EncryptionCanary.verify_key() == (True, "created")
    app = ZoomApp.objects.create(name="Main", client_id="cid", client_secret="very-secret-value")
    use_keys(KEY_B)
    ok, detail = EncryptionCanary.verify_key()
    assert ok is False
    assert "FIELD_ENCRYPTION_KEY is wrong" in detail
    with pytest.raises(EncryptionKeyError, match="zoomauth.ZoomApp.client_secret"):
        ZoomApp.objects.get(pk=app.pk)


def test_check_encryption_command_fails_on_a_wrong_key(db, use_keys):
    use_keys(KEY_A)
    call_command("check_encryption")
    use_keys(KEY_B)
    with pytest.raises(Exception, match="Encryption check failed"):
        call_command("check_encryption")


def test_rotation_reencrypts_every_column_under_the_newest_key(db, use_keys, capsys):
    use_keys(KEY_A)
    EncryptionCanary.verify_key()
    app = ZoomApp.objects.create(name="Main", client_id="cid", client_secret="s1", webhook_secret="w1")
    use_keys(KEY_B, KEY_A)
    call_command("rotate_encryption_key")
    out = capsys.readouterr().out
    assert "zoomauth.ZoomApp: 1 row(s) re-encrypted" in out
    assert "accounts.EncryptionCanary: 1 row(s) re-encrypted" in out
    use_keys(KEY_B)  # the old key is gone: everything must still read
    app = ZoomApp.objects.get(pk=app.pk)
    assert (app.client_secret, app.webhook_secret) == ("s1", "w1")
    assert EncryptionCanary.objects.get().value == EncryptionCanary.PLAINTEXT


def test_rotation_refuses_when_no_key_reads_the_data(db, use_keys):
    use_keys(KEY_A)
    EncryptionCanary.verify_key()
    use_keys(KEY_B)
    with pytest.raises(Exception, match="Refusing to rotate"):
        call_command("rotate_encryption_key")
