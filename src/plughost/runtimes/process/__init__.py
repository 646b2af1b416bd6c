"""Subprocess plugins in any language: framing, handshake, JSON-RPC session, supervision."""
