"""Services: orchestration across layers (config, host services for plugins, installer, ...)."""
