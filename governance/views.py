from django.db import connections
from django.http import JsonResponse


def healthz(request):
    """Liveness and database reachability for load balancers (no personal data, no auth)."""
    status = {}
    for alias in ("default", "keystore"):
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
            status[alias] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            status[alias] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in status.values())
    return JsonResponse({"status": "ok" if ok else "degraded", "databases": status}, status=200 if ok else 503)
