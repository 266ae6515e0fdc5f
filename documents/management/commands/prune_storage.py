from django.core.management.base import BaseCommand, CommandParser

from documents.retention import prune_storage


class Command(BaseCommand):
    help = (
        "Delete expired quarantine files and artifacts and files no row points to, "
        "and mark rows whose files are gone (the rules are in documents/retention.py). "
        "Celery Beat runs the same every RETENTION_INTERVAL_MINUTES."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be deleted or marked; change nothing.",
        )

    def handle(self, *args: object, **options: object) -> None:
        dry_run = bool(options["dry_run"])
        report = prune_storage(dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        for deletion in report.deletions:
            self.stdout.write(f"{verb}: {deletion.describe()}")
        counts = ", ".join(f"{rule} {count}" for rule, count in sorted(report.counts().items()))
        self.stdout.write(
            f"{verb} {len(report.deletions)} items ({counts or 'none'}), "
            f"{report.bytes_freed} bytes."
        )
