"""Services: orchestration across storage, security and runtimes (installer, updater, facade).

The management facade every interface uses is :class:`plughost.services.manager.PluginService`.
"""
