"""Services: orchestration across layers (config, host services for plugins, installer,
updater, ...).

The management facade every interface uses is :class:`plughost.services.manager.PluginService`.
"""
