"""Observability: logs (with redaction), metrics, health."""
