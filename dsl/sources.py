"""The parse stage: read a ruleset file and the libraries it imports, detecting cycles."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from dsl import ast
from dsl.diagnostics import Diagnostic, Span
from dsl.parser import MAX_SOURCE_BYTES, parse

Reader = Callable[[str], str]


def read_file(path: str) -> str:
    """The text of a regular file (a FIFO or a device such as /dev/zero would block or never end), up to
    one character more than the parser takes, so that it reports a file too large (P102)."""
    mode = os.stat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a directory: open says "Is a directory"
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(path, encoding="utf-8") as handle:
        return handle.read(MAX_SOURCE_BYTES + 1)


class Loader:
    """Parses a root file and, depth first, every library it imports (each once)."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.sources: dict[str, str] = {}
        self.modules: dict[str, ast.Module] = {}
        self.diagnostics: list[Diagnostic] = []

    def load(self, path: str, *, via: Span | None = None, stack: tuple[str, ...] = ()) -> None:
        if path in stack:
            chain = " -> ".join(os.path.basename(p) for p in (*stack[stack.index(path) :], path))
            assert via is not None
            self.diagnostics.append(Diagnostic("P601", f"import cycle: {chain}", via))
            return
        if path in self.modules or path in self.sources:
            return
        try:
            text = self.reader(path)
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the path
            span = via or Span(path, 1, 1, 1, 2)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            code = "P600" if via is not None else "P100"
            self.diagnostics.append(Diagnostic(code, f"cannot read {path}: {reason}", span))
            return
        self.sources[path] = text
        module, problems = parse(path, text)
        self.diagnostics.extend(problems)
        if module is None:
            return
        self.modules[path] = module
        self._load_imports(module, (*stack, path))

    def _load_imports(self, module: ast.Module, stack: tuple[str, ...]) -> None:
        base = os.path.dirname(module.file)
        for item in module.imports:
            target = os.path.normpath(os.path.join(base, item.path))
            self.load(target, via=item.span, stack=stack)
            imported = self.modules.get(target)
            if imported is not None and imported.body.kind != "library":
                message = f"{item.path} holds a ruleset; only libraries can be imported"
                hint = "declare shared rules in a `library NAME { ... }` file"
                self.diagnostics.append(Diagnostic("P602", message, item.span, hint))
