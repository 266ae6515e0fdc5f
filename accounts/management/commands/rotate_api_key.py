from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.keys import find_key, rotate_api_key
from accounts.models import ApiKey


class Command(BaseCommand):
    help = (
        "Give an API key a new secret. The new key is printed once, as the last "
        "line; the old secret stops working after --grace-minutes (default 0: at once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The key's prefix, as shown in the admin.")
        parser.add_argument(
            "--grace-minutes",
            type=int,
            default=0,
            help="Minutes the old secret keeps working, so clients can switch over.",
        )

    def handle(self, *args: object, **options: object) -> None:
        grace_minutes = int(options["grace_minutes"])  # type: ignore[call-overload]
        if grace_minutes < 0:
            raise CommandError("--grace-minutes must be 0 or more.")
        try:
            issued = rotate_api_key(
                find_key(str(options["prefix"])), grace=timedelta(minutes=grace_minutes)
            )
        except (ApiKey.DoesNotExist, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        key = issued.api_key
        if grace_minutes:
            self.stdout.write(f"The old secret works for {grace_minutes} more minute(s).")
        else:
            self.stdout.write("The old secret no longer works.")
        self.stdout.write(f"Rotated key {key.prefix}…{key.last4}. Store it now: it is not shown again.")
        self.stdout.write(issued.token)
