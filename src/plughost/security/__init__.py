"""Security: safe archive extraction, package integrity, signatures and trust; permission scopes
(:mod:`.scopes`), grants and checks (:mod:`.permissions`) persisted through :mod:`.grant_store`, and
the audit log (:mod:`.audit`)."""
