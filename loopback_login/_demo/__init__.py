"""The demo: a local provider that behaves like Honeywell's Apigee API, and ``loopback-login demo``.

:mod:`.provider` is the authorization server and its API (with fault switches
for the tests), :mod:`.browser` plays the person at the browser over HTTP,
:mod:`.run` is the ``demo`` command, and :mod:`.serving` tells the other
commands whether a ``demo --serve`` is running. Importing this package loads
none of them.
"""
