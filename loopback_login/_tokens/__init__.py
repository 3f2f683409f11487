"""Tokens kept: the typed record and its freshness rule, refresh, logout, client credentials."""
