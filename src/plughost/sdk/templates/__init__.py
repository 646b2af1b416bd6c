"""Scaffolds for `plughost new`: one folder of ``*.tmpl`` files per runtime."""
