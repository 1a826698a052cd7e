from django.core.management.base import BaseCommand, CommandError

from accounts.models import EncryptionCanary


class Command(BaseCommand):
    help = "Fail (exit 1) unless FIELD_ENCRYPTION_KEY decrypts the stored canary. Run before starting the broker."

    def handle(self, *args, **options):
        ok, detail = EncryptionCanary.verify_key()
        if not ok:
            raise CommandError(f"Encryption check failed: {detail}.")
        self.stdout.write(self.style.SUCCESS(f"Encryption key check passed ({detail})."))
