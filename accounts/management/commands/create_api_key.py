from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.keys import create_api_key
from accounts.models import ALL_SCOPES


class Command(BaseCommand):
    help = "Create an API key (and its tenant if needed). The key is printed once, as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant name; created if it does not exist.")
        parser.add_argument("--name", default="", help="A label for the key, shown in the admin.")
        parser.add_argument(
            "--scopes",
            nargs="+",
            default=list(ALL_SCOPES),
            metavar="SCOPE",
            help=f"Scopes to grant (default: all). Valid: {', '.join(ALL_SCOPES)}.",
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            issued = create_api_key(
                str(options["tenant"]), name=str(options["name"]), scopes=list(options["scopes"])  # type: ignore[call-overload]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        key = issued.api_key
        self.stdout.write(
            f"Created key {key.prefix}…{key.last4} for tenant '{key.tenant.name}' "
            f"with scopes: {', '.join(key.scopes)}."
        )
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(issued.token)
