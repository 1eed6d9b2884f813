"""Observability: logs (with redaction), metrics, health, and the status view over them."""
