"""Profiles: presets, resolution, metadata (RFC 8414, 9728), registration (RFC 7591), secrets."""
