# Mamoru — the two commands: `make run` (demo on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Address `make run` serves on (the demo data is seeded for it): make run BIND=127.0.0.1:8131
BIND ?= 127.0.0.1:8000

.PHONY: run test venv migrate seed lint check-deploy browser-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

migrate: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py migrate --database keystore --noinput

seed: migrate
	$(PY) manage.py seed_demo --bind $(BIND)

## make run: install, migrate the embedded SQLite database, load demo data, serve on
## http://127.0.0.1:8000 with a Celery worker (filesystem broker); Ctrl-C stops everything.
run: seed
	$(PY) manage.py run_demo --bind $(BIND)

## make test: the whole suite (server tests skip locally when a server is down; fail with CI=true).
test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .

check-deploy: venv
	MAMORU_DEPLOYMENT=production DJANGO_SECRET_KEY=$$($(PY) -c 'import secrets;print(secrets.token_urlsafe(50))') \
	MAMORU_MASTER_KEYS=k1:$$($(PY) -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())') \
	MAMORU_BLIND_INDEX_KEY=$$($(PY) -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())') \
	MAMORU_PROOF_KEY=$$($(PY) -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())') \
	ALLOWED_HOSTS=privacy.example.com MAMORU_PUBLIC_URL=https://privacy.example.com MAMORU_METRICS_TOKEN=check \
	MAMORU_KEYSTORE_URL=sqlite:///var/keystore-prod-check.sqlite3 \
	$(PY) manage.py check --deploy --fail-level WARNING

## Debian's Chromium for the browser tests (needs root; CI does this itself), and axe-core from npm
## for their accessibility checks (tests only: tests/e2e/package.json, into tests/e2e/node_modules).
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk)
	cd tests/e2e && npm ci --no-audit --no-fund

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
