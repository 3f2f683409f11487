"""Logging in: bind the redirect port, open the browser, receive the callback, exchange the code."""
