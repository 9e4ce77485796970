"""``manage.py run_demo_mailing``: serve the demo mailing-list API on loopback (foreground)."""

from django.core.management.base import BaseCommand

from dsr.demo import DEMO_MAILING_PORT, DEMO_MAILING_TOKEN, demo_mailing_db
from dsr.demo_mailing import MailingApp, serve


class Command(BaseCommand):
    help = "Serve the demo mailing-list API (used by the demo data map) on 127.0.0.1."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=DEMO_MAILING_PORT)

    def handle(self, *args, port: int, **options):
        app = MailingApp(demo_mailing_db(), token=DEMO_MAILING_TOKEN)
        server, thread = serve(app, port=port)
        self.stdout.write(f"demo mailing API on http://127.0.0.1:{server.server_port} (Ctrl-C to stop)")
        try:
            thread.join()
        except KeyboardInterrupt:
            server.shutdown()
