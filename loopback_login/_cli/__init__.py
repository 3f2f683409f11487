"""The ``loopback-login`` command: one error boundary, exit codes.

stdout carries only the result (the summary of ``login``, the token of
``token``, the table of ``status``); the URL, progress and errors go to stderr.
Exit codes: 0 ok, 2 usage or configuration, 3 login required, 4 provider or
network, 5 timed out or cancelled. The grammar is :mod:`.parser`'s, the
commands :mod:`.commands`'; ``token NAME`` with a fresh token needs neither
argparse nor anything heavy. What each fast path may import is stated once,
in tests/test_fast_paths.py.
"""

from __future__ import annotations

import os
import sys

from .._errors import ConfigError, LoginRequired, LoopbackLoginError
from .._store import Store
from .._text import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PROG = "loopback-login"
EXIT_INTERNAL = 1
EXIT_CANCELLED = 5


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quick = _token_command(argv)
    if quick is not None:
        # The common case of scripts, kept light: no argparse, one file read.
        from .commands import token

        name, shape = quick
        return _boundary(lambda: token(name, shape=shape), name, described=False, debug=False)
    from .commands import given_profile_flags
    from .parser import parse

    args = parse(argv)
    described = hasattr(args, "provider") and bool(given_profile_flags(args))
    return _boundary(
        lambda: args.func(args),
        getattr(args, "profile", None),
        described=described,
        debug=getattr(args, "debug", False),
    )


def _token_command(argv: list[str]) -> tuple[str, str | None] | None:
    """``token NAME`` with ``--header`` or ``--json`` at most: (NAME, the flag), else ``None``."""
    if not 2 <= len(argv) <= 3 or argv[0] != "token":
        return None
    names = [arg for arg in argv[1:] if not arg.startswith("-")]
    shapes = [arg for arg in argv[1:] if arg in ("--header", "--json")]
    if len(names) != 1 or len(names) + len(shapes) != len(argv) - 1:
        return None
    return names[0], shapes[0][2:] if shapes else None


def _boundary(run: Callable[[], int], profile: str | None, *, described: bool, debug: bool) -> int:
    """The one error boundary: a domain error is one line and its exit code, never a traceback."""
    try:
        return int(run())
    except LoopbackLoginError as exc:
        if debug:
            import traceback

            traceback.print_exc()  # and still the exit code that scripts rely on
        hint = "" if described else _did_you_mean(profile, exc)
        print(f"{PROG}: {shown(exc)}{hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        # The reader of our stdout went away (`... | head`): nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except Exception as exc:
        if debug:
            raise
        # Only the type: an unexpected exception's text might carry a secret.
        print(
            f"{PROG}: internal error ({type(exc).__name__}); run again with --debug and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _did_you_mean(name: str | None, exc: LoopbackLoginError) -> str:
    """For a profile name that does not exist, the names it is close to."""
    if not name or not isinstance(exc, (LoginRequired, ConfigError)):
        return ""
    try:
        names = Store(warn=lambda _: None).profile_names()
    except LoopbackLoginError:
        return ""
    if name in names:
        return ""
    import difflib

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


if __name__ == "__main__":
    sys.exit(main())
