"""Security: permission scopes (:mod:`.scopes`), grants and checks (:mod:`.permissions`),
and the audit log (:mod:`.audit`).
"""
