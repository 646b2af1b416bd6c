"""Security: permission scopes (:mod:`.scopes`), grants and checks (:mod:`.permissions`) over a
:mod:`.grant_store`,
and the audit log (:mod:`.audit`).
"""
