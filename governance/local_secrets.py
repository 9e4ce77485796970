"""Development secrets generated once into an ignored file.

When ``DJANGO_SECRET_KEY``, ``MAMORU_MASTER_KEYS`` or ``MAMORU_BLIND_INDEX_KEY`` are not set, the
embedded default reads them from ``var/dev_secrets.json`` and creates that file with fresh random
values the first time. The file is git-ignored and never used when the variables are set.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path


def _new_secrets() -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "MAMORU_MASTER_KEYS": "dev1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "MAMORU_BLIND_INDEX_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "MAMORU_PROOF_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }


def load_dev_secrets(var_dir: Path) -> dict[str, str]:
    """Return the development secrets, creating the file atomically on first use."""
    path = var_dir / "dev_secrets.json"
    if path.exists():
        data = json.loads(path.read_text())
        missing = {k: v for k, v in _new_secrets().items() if k not in data}
        if not missing:
            return data
        data.update(missing)
    else:
        data = _new_secrets()
    var_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)
    try:
        # link() fails if another process won the race; then we read theirs.
        if path.exists():
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return json.loads(path.read_text())
