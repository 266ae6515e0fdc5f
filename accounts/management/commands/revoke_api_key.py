from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.keys import find_key, revoke_api_key
from accounts.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key at once, by its prefix (the part before the dot)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The key's prefix, as shown in the admin.")

    def handle(self, *args: object, **options: object) -> None:
        try:
            api_key = find_key(str(options["prefix"]))
        except ApiKey.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        revoke_api_key(api_key)
        self.stdout.write(f"Revoked key {api_key.prefix}…{api_key.last4} of tenant '{api_key.tenant.name}'.")
