"""Text from elsewhere, made safe to print on a terminal.

Anything a provider, a metadata document or a config file chose (a scope, an
id_token subject, a discovered endpoint, a host name in a network error) goes
through :func:`shown` on its way to the terminal, so that an escape sequence
(ESC, BEL, CSI), a newline or a bidi override can neither drive the terminal
nor forge a line. Stdlib only: ``token`` and ``status`` print through here.
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(text: object) -> str:
    """``text`` with every character that does not print escaped (``\\x1b``, ``\\u202e``)."""
    text = str(text)
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def clean(text: str, limit: int = 200) -> str:
    """Text from the network made safe for one terminal line, bounded.

    Control characters (escape sequences, newlines) and every other character
    that does not print (bidi overrides, unassigned code points) are escaped.
    """
    text = shown(text[: limit * 2].strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"
