"""The HTTP side: routes (server.py), request and connection limits (guard.py), TLS and
basic auth from --web.config.file (security.py)."""

#: Outside 9100-9999 (Prometheus's exporter port allocations, all taken) and clear of
#: every port in the platform's port table. Peers fetch each other's identity here too.
DEFAULT_PORT = 19100
