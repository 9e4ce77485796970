# syntax=docker/dockerfile:1
# Mamoru's image: `docker build -t mamoru .`, then `docker compose up` (compose.yaml).
# Roles (deploy/entrypoint.sh): web (default), worker, scheduler, migrate, manage <command>.

# --- builder: compilers and headers, the virtual environment with every dependency ---------------
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libpq-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY governance ./governance
COPY consent ./consent
COPY dsr ./dsr
COPY audit ./audit
COPY oversight ./oversight
# The wheel is built and installed with its pinned dependencies (spaCy models included: nothing is
# downloaded at run time).
RUN pip wheel --wheel-dir /wheels . \
 && pip install --no-index --find-links /wheels mamoru \
 && pip uninstall -y mamoru
# The application itself runs from /app (below): the installed copy only proved the wheel builds
# complete; the project-level translations in locale/ live outside the packages.

# --- runtime: slim, no compilers, non-root ---------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=governance.settings \
    MAMORU_APP_DIR=/app \
    MAMORU_VAR_DIR=/var/lib/mamoru \
    MAMORU_STATIC_ROOT=/app/staticfiles \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    GUNICORN_BIND=0.0.0.0:8000 \
    LOG_FORMAT=json
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 tini fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mamoru \
 && useradd --system --uid 10001 --gid mamoru --home-dir /var/lib/mamoru --shell /usr/sbin/nologin mamoru \
 && mkdir -p /var/lib/mamoru /tmp/prometheus \
 && chown mamoru:mamoru /var/lib/mamoru /tmp/prometheus
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY manage.py pyproject.toml ./
COPY locale ./locale
COPY governance ./governance
COPY consent ./consent
COPY dsr ./dsr
COPY audit ./audit
COPY oversight ./oversight
COPY deploy/entrypoint.sh ./deploy/entrypoint.sh
# Static files collected once at build (throwaway development secrets under /tmp/build-var, removed:
# nothing of them stays in the image). Translations (.mo) are committed compiled.
RUN MAMORU_VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput -v 0 \
 && rm -rf /tmp/build-var \
 && python -m compileall -q /app
USER mamoru:mamoru
VOLUME ["/var/lib/mamoru"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; r=urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2); sys.exit(r.status != 200)"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/entrypoint.sh"]
CMD ["web"]
