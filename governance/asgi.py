import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
application = get_asgi_application()

from governance.startup import web_process_ready  # noqa: E402 - needs the configured apps

web_process_ready()
