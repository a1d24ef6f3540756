"""Package attributes imported when first asked for (PEP 562), so that importing one light
submodule of the store does not import every operation and model with the package."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], object]:
    """A `__getattr__` for `package`: each name of `homes` is read from its module
    (`module`, or `module:attribute` for a name of its own) on first use and kept in the
    package, so later lookups are plain attribute reads."""

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = home.partition(":")
        value = getattr(import_module(module), attribute or name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
