import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
application = get_wsgi_application()

from governance.startup import web_process_ready  # noqa: E402 - needs the configured apps

web_process_ready()
