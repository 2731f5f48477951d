"""Find grammars: installed entry points, and grammar files in user folders.

The built-in grammars are found exactly as third-party ones are, through the
entry-point group ``smtplogscan.grammars``. A folder given with ``--grammar-path``
is read for ``*.py`` files; every `Grammar` subclass defined in one is registered.
A plugin that fails to load is recorded with its reason and skipped.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from smtplogscan.errors import FormatError, GrammarLoadError
from smtplogscan.grammar import Grammar

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "smtplogscan.grammars"


@dataclass(frozen=True, slots=True)
class Loaded:
    """A grammar class and where it came from."""

    grammar: type[Grammar]
    origin: str


@dataclass(slots=True)
class Registry:
    """The grammars that loaded, and the plugins that did not."""

    grammars: dict[str, Loaded] = field(default_factory=dict)
    failures: list[GrammarLoadError] = field(default_factory=list)
    #: The plugin folders read, so that a worker process can load the same.
    paths: tuple[Path, ...] = ()

    def add(self, grammar: object, origin: str) -> None:
        """Register `grammar`, or record why it cannot be."""
        if not (inspect.isclass(grammar) and issubclass(grammar, Grammar)):
            self.reject(origin, "it is not a subclass of smtplogscan.Grammar")
            return
        if inspect.isabstract(grammar):
            self.reject(origin, "it does not implement sniff and feed")
            return
        name = getattr(grammar, "name", "")
        missing = [
            a
            for a in ("name", "mta", "formats", "prefilter")
            if not hasattr(grammar, a)
        ]
        if missing:
            self.reject(origin, f"it lacks the class attribute(s) {', '.join(missing)}")
            return
        fault = grammar.cut_pattern_fault()
        if fault:
            self.reject(origin, fault)
            return
        if name in self.grammars:
            first = self.grammars[name].origin
            self.reject(origin, f"the name {name!r} is taken by {first}")
            return
        self.grammars[name] = Loaded(grammar, origin)

    def get(self, name: str) -> type[Grammar]:
        """Return the grammar called `name`."""
        try:
            return self.grammars[name].grammar
        except KeyError:
            known = ", ".join(sorted(self.grammars)) or "none"
            raise FormatError(
                f"no grammar is called {name!r} (known: {known})"
            ) from None

    def reject(self, origin: str, reason: str) -> None:
        """Record that the plugin from `origin` is skipped, and why."""
        error = GrammarLoadError(f"grammar plugin {origin} skipped: {reason}")
        log.debug("%s", error)
        self.failures.append(error)


def load(paths: Iterable[Path] = ()) -> Registry:
    """Load the installed grammars, then those in the folders `paths`."""
    paths = tuple(paths)
    registry = Registry(paths=paths)
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        dist = point.dist.name if point.dist else "?"
        origin = f"{point.name} ({point.value}, from {dist})"
        try:
            registry.add(point.load(), origin)
        except Exception as err:  # a broken plugin must never stop the others
            registry.reject(origin, f"{type(err).__name__}: {err}")

    for folder in paths:
        if not folder.is_dir():
            registry.reject(str(folder), "not a folder")
            continue
        for file in sorted(folder.glob("*.py")):
            _load_file(registry, file)
    return registry


def _load_file(registry: Registry, file: Path) -> None:
    try:
        module = _import_file(file)
    except Exception as err:  # a broken plugin must never stop the others
        registry.reject(str(file), f"{type(err).__name__}: {err}")
        return

    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Grammar)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if not found:
        registry.reject(str(file), "it defines no Grammar subclass")
    for grammar in found:
        registry.add(grammar, f"{grammar.__name__} ({file})")


def _import_file(file: Path) -> ModuleType:
    name = f"smtplogscan_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError("cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
