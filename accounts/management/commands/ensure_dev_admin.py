import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User


class Command(BaseCommand):
    help = "Create the development admin account once and print its password (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError("ensure_dev_admin is for development (DEBUG=true) only; use createsuperuser.")
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin account '{username}' exists already (its password was printed when it was made).")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
        self.stdout.write(self.style.WARNING(f"Created admin account '{username}' with password: {password}"))
        self.stdout.write("It is printed this once. Reset it with: .venv/bin/python manage.py changepassword admin")
