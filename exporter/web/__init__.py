"""The HTTP side: routes (server.py), request and connection limits (guard.py), TLS and
basic auth from --web.config.file (security.py)."""
