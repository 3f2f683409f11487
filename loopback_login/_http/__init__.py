"""Every outgoing request: one client-session factory, timeouts, the retry policy."""
