"""Observability: metrics, health probes and supervisor policies, logs, alerts."""
