"""The data-subject portal at ``/privacy/``: submit, verify, follow and download requests (no JavaScript needed)."""
