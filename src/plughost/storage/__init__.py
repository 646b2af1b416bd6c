"""Storage backends: databases, object stores, configuration stores, plugin key-value storage."""
