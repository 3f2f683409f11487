"""The public surface as a user meets it: names, modules, the exception tree, the version."""

from __future__ import annotations

import importlib.metadata
import pickle
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from support import NEUTRAL_CWD

import loopback_login
from loopback_login import _errors

ROOT = Path(__file__).parent.parent


def test_public_names_report_the_package_as_their_module() -> None:
    for name in loopback_login.__all__:
        assert getattr(loopback_login, name).__module__ == "loopback_login", name


def test_a_traceback_names_the_public_exception() -> None:
    code = "from loopback_login._store import Store\nStore().require_record('nobody')\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=NEUTRAL_CWD
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("loopback_login.LoginRequired: ")


def test_exceptions_survive_pickling_under_their_public_name() -> None:
    error = loopback_login.LoginRequired("run login again")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is loopback_login.LoginRequired and str(copy) == "run login again"


def test_dir_lists_each_public_name_once_and_nothing_private() -> None:
    for name in loopback_login.__all__:
        getattr(loopback_login, name)  # loaded ones must not show twice
    names = dir(loopback_login)
    assert len(names) == len(set(names))
    assert set(names) == {*loopback_login.__all__, "__version__"}


def test_provider_presets_are_not_exported() -> None:
    """No public function takes or returns a Provider: providers are named by string."""
    assert "Provider" not in loopback_login.__all__
    assert not hasattr(loopback_login, "Provider")


def test_one_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    assert importlib.metadata.version("loopback-login") == loopback_login.__version__


def _drawn_tree() -> dict[str, tuple[str, str]]:
    """The tree in _errors' docstring: each class with its parent and its exit-code column."""
    tree: dict[str, tuple[str, str]] = {}
    parents: list[str] = []
    root_column = None
    for line in (_errors.__doc__ or "").splitlines():
        match = re.search(r"\b([A-Z]\w+)\b(?: \(\w+\))?\s*(\d\b|-)?", line)
        if not match or not hasattr(_errors, match.group(1)):
            continue
        if root_column is None:
            root_column = match.start(1)
        depth = (match.start(1) - root_column) // 4
        del parents[depth:]
        tree[match.group(1)] = (parents[-1] if parents else "", match.group(2) or "")
        parents.append(match.group(1))
    return tree


def test_the_drawn_exception_tree_matches_the_classes() -> None:
    tree = _drawn_tree()
    errors = {
        name: getattr(loopback_login, name)
        for name in loopback_login.__all__
        if isinstance(getattr(loopback_login, name), type)
        and issubclass(getattr(loopback_login, name), loopback_login.LoopbackLoginError)
    }
    assert set(tree) == set(errors)
    for name, (parent, code) in tree.items():
        error = errors[name]
        if parent:
            assert error.__bases__[0] is errors[parent], name
        if code:
            assert str(error.exit_code) == code, name
        elif parent:
            assert error.exit_code == errors[parent].exit_code, name
    assert loopback_login.InvalidCallback.exit_code == 4


def test_a_busy_port_is_not_the_providers_fault() -> None:
    assert not issubclass(loopback_login.PortInUse, loopback_login.ProviderError)
    assert issubclass(loopback_login.PortInUse, loopback_login.LoopbackLoginError)
    assert loopback_login.PortInUse.exit_code == 4  # what `login` exits with, as before
