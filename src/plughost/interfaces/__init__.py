"""Thin adapters (CLI, HTTP API, dashboard) over the host and services. No business logic here."""
