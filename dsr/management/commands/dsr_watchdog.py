"""``manage.py dsr_watchdog``: requeue stuck request nodes (also a periodic Celery task)."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from dsr.execution import watchdog_run


class Command(BaseCommand):
    help = "Requeue request nodes whose worker died or whose broker message was lost."

    def add_arguments(self, parser):
        parser.add_argument("--stale-seconds", type=float, default=None,
                            help="Treat running nodes without a heartbeat for this long as stuck "
                                 "(default: nodes whose lease expired, MAMORU_DSR_LEASE_SECONDS).")
        parser.add_argument("--loop", type=float, default=0, help="Repeat every N seconds.")

    def handle(self, *args, stale_seconds=None, loop=0, **options):
        import time

        stale = timedelta(seconds=stale_seconds) if stale_seconds is not None else None
        while True:
            count = watchdog_run(stale_after=stale, lost_after=stale)
            self.stdout.write(f"requeued {count} nodes")
            if not loop:
                return
            time.sleep(loop)
