import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.seeding import seed_jobs, vacuum_analyze


class Command(BaseCommand):
    help = (
        "Add synthetic documents and jobs with PostgreSQL COPY, for benchmarks of the job list "
        "and the dashboard. Run it against a database of its own: the rows are fake and have "
        "no files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="Jobs to add (one document each).")
        parser.add_argument("--tenants", type=int, default=10, help="Tenants seed-00 ... to spread them over.")
        parser.add_argument("--days", type=int, default=90, help="Days back that creation times spread over.")
        parser.add_argument("--batch-size", type=int, default=50_000, help="Rows per COPY.")
        parser.add_argument("--no-vacuum", action="store_true", help="Skip VACUUM (ANALYZE) afterwards.")
        parser.add_argument(
            "--yes", action="store_true", required=True,
            help="Confirm that this database may receive fake rows.",
        )

    def handle(self, *args: object, **options: object) -> None:
        count = int(options["count"])  # type: ignore[arg-type]
        tenants = int(options["tenants"])  # type: ignore[arg-type]
        if count < 1 or tenants < 1:
            raise CommandError(f"--count and --tenants must be at least 1, got {count} and {tenants}.")
        started = time.monotonic()

        def progress(done: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-9)
            self.stdout.write(f"{done} of {count} jobs written ({rate:.0f} rows/s)")

        report = seed_jobs(
            count,
            tenants,
            days=int(options["days"]),  # type: ignore[arg-type]
            batch_size=int(options["batch_size"]),  # type: ignore[arg-type]
            progress=progress,
        )
        if not options["no_vacuum"]:
            vacuum_analyze()
        self.stdout.write(
            f"Added {report.jobs} jobs and {report.documents} documents over {report.tenants} tenants "
            f"in {time.monotonic() - started:.1f} s."
        )
