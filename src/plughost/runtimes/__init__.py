"""Runtimes turn a manifest + files into a PluginInstance the host drives the same way."""
