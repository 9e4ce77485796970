"""Settings for bench/consent.py: the project's settings plus a constant view for the ceiling."""

from governance.settings import *  # noqa: F403

ROOT_URLCONF = "bench.consent_urls"
DEBUG = False
LOGGING["root"]["level"] = "WARNING"  # noqa: F405 - one log line per 4xx would skew the numbers
