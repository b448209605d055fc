"""Build tools, not part of the exporter: `make generate` runs them (generated.py holds the
write-or-check logic every generator shares; docs.py writes the generated docs)."""
