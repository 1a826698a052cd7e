from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import EncryptionCanary
from brokerproject.crypto import EncryptionKeyError, reencrypt_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column under the newest FIELD_ENCRYPTION_KEY (the first one). "
        "Put the new key first and keep the old ones after it while this runs."
    )

    def handle(self, *args, **options):
        keys = settings.FIELD_ENCRYPTION_KEY
        ok, detail = EncryptionCanary.verify_key()
        if not ok:
            raise CommandError(f"Refusing to rotate: {detail}. None of the configured keys reads the data.")
        try:
            counts = reencrypt_all()
        except EncryptionKeyError as exc:
            raise CommandError(
                f"{exc} Nothing was changed for that table; add the missing old key and run again."
            ) from None
        total = 0
        for label, count in counts.items():
            self.stdout.write(f"{label}: {count} row(s) re-encrypted")
            total += count
        self.stdout.write(self.style.SUCCESS(f"Done: {total} row(s) now under the newest of {len(keys)} key(s)."))
        if len(keys) > 1:
            self.stdout.write("You can now remove the old key(s) from FIELD_ENCRYPTION_KEY and restart.")
