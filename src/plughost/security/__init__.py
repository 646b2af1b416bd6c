"""Security: safe archive extraction, package integrity, signatures and trust (and, later,
permissions and limits)."""
