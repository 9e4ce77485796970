"""Operating the service: health probes, Prometheus metrics, request ids and structured logs."""
