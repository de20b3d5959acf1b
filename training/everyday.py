"""Everyday agent traffic read from this machine: source code, documents, web pages, by source unit."""

from __future__ import annotations

import glob
import gzip
import hashlib
import html.parser
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

Unit = tuple[str, str]  # (source unit: a package, a project, a site, a generator), text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE_PACKAGES = glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages"))
RUST_DOCS = os.path.expanduser("~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html")
MAX_FILE = 400_000  # characters read from one file
PER_UNIT = 60  # files read from one unit at most


@dataclass(frozen=True)
class Source:
    """A named reader of one kind of text; ``units`` yields (unit, text) for every file or page."""

    name: str
    kind: str
    units: Callable[[], Iterator[Unit]]


def split_of(unit: str) -> str:
    """``heldout`` (about 30% of the units: never trained on, never tuned on), ``val`` (10%) or ``train``.

    Decided by a digest of the unit's name, so that a whole package, project or site lands on one side.
    """
    bucket = int(hashlib.sha256(unit.encode()).hexdigest()[:8], 16) % 100
    return "heldout" if bucket < 30 else "val" if bucket < 40 else "train"


def _read(path: str) -> str:
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="strict") as handle:
            return str(handle.read(MAX_FILE))
    except (OSError, UnicodeDecodeError, EOFError):
        return ""


def _files(unit: str, paths: list[str]) -> Iterator[Unit]:
    for path in sorted(paths)[:PER_UNIT]:
        text = _read(path)
        if len(text) > 200:
            yield unit, text


def _by_top_dir(root: str, pattern: str, prefix: str) -> Iterator[Unit]:
    """Files matching ``pattern`` under each top-level folder of ``root``; the folder is the unit."""
    for top in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        paths = glob.glob(os.path.join(root, top, pattern), recursive=True)
        yield from _files(f"{prefix}:{top}", [p for p in paths if os.path.isfile(p)])


# --- code ---------------------------------------------------------------------------------------


def python_code() -> Iterator[Unit]:
    for site in SITE_PACKAGES:
        for top in sorted(os.listdir(site)):
            if top.endswith((".dist-info", ".egg-info")) or top.startswith(("_", ".")):
                continue
            paths = glob.glob(os.path.join(site, top, "**/*.py"), recursive=True)
            yield from _files(f"pypi:{top}", [p for p in paths if "/tests/" not in p][: PER_UNIT * 3])


def c_code() -> Iterator[Unit]:
    yield from _by_top_dir("/usr/include", "**/*.h", "c")


def js_code() -> Iterator[Unit]:
    yield from _by_top_dir("/usr/lib/node_modules/npm/node_modules", "**/*.js", "npm")


def ts_code() -> Iterator[Unit]:
    """TypeScript sources of the npm packages that tests/node installs."""
    root = os.path.join(ROOT, "tests/node/node_modules")
    yield from _by_top_dir(root, "**/src/**/*.ts", "npm")
    yield from _by_top_dir(os.path.join(root, "@grpc"), "**/src/**/*.ts", "npm")


def shell_code() -> Iterator[Unit]:
    for path in sorted(glob.glob("/usr/bin/*") + glob.glob("/usr/sbin/*") + glob.glob("/etc/init.d/*")):
        text = _read(path) if os.path.isfile(path) and os.path.getsize(path) < MAX_FILE else ""
        if (
            text.startswith(("#!/bin/sh", "#!/bin/bash", "#! /bin/sh", "#!/usr/bin/env bash"))
            and len(text) > 300
        ):
            yield f"sh:{os.path.basename(path)}", text


def perl_code() -> Iterator[Unit]:
    yield from _by_top_dir(glob.glob("/usr/share/perl/5*")[0], "**/*.p[ml]", "perl")


def cmake_code() -> Iterator[Unit]:
    for path in sorted(glob.glob("/usr/share/cmake*/Modules/*.cmake")):
        name = os.path.basename(path).removesuffix(".cmake")
        yield from _files(f"cmake:{re.sub(r'[^A-Za-z].*', '', name[:4]) or name}", [path])


def rust_code() -> Iterator[Unit]:
    """The standard library's Rust source, as rustdoc renders it (`src/<crate>/...`): the code only."""
    for crate in sorted(os.listdir(os.path.join(RUST_DOCS, "src"))) if os.path.isdir(RUST_DOCS) else []:
        pages = glob.glob(os.path.join(RUST_DOCS, "src", crate, "**/*.rs.html"), recursive=True)
        for subdir in sorted({os.path.dirname(p) for p in pages}):
            unit = f"rust-src:{crate}/{os.path.relpath(subdir, os.path.join(RUST_DOCS, 'src', crate))}"
            for path in sorted(glob.glob(os.path.join(subdir, "*.rs.html")))[:PER_UNIT]:
                text = rust_source(_read(path))
                if len(text) > 200:
                    yield unit, text


def rust_source(page: str) -> str:
    found = re.search(r"<code>(.*?)</code>", page, re.S)
    return page_text(found.group(1), keep_lines=True) if found else ""


# --- documents ------------------------------------------------------------------------------------


def readmes() -> Iterator[Unit]:
    """The long descriptions (README) that packages publish in their metadata."""
    for site in SITE_PACKAGES:
        for meta in sorted(glob.glob(os.path.join(site, "*.dist-info", "METADATA"))):
            body = _read(meta).split("\n\n", 1)
            name = os.path.basename(os.path.dirname(meta)).split("-")[0].lower()
            if len(body) == 2 and len(body[1]) > 300:
                yield f"pypi:{name}", body[1]


def licences() -> Iterator[Unit]:
    for site in SITE_PACKAGES:
        for path in sorted(glob.glob(os.path.join(site, "*.dist-info", "licenses", "*"))):
            name = os.path.basename(os.path.dirname(os.path.dirname(path))).split("-")[0].lower()
            yield from _files(f"pypi:{name}", [path])
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        yield from _files(f"licence:{os.path.basename(path)}", [path])


def debian_docs() -> Iterator[Unit]:
    """Changelogs, NEWS, READMEs and copyright files that Debian packages install."""
    for folder in sorted(glob.glob("/usr/share/doc/*")):
        pattern = ("changelog*", "NEWS*", "README*", "copyright", "*.txt", "*.md")
        paths = [p for pat in pattern for p in glob.glob(os.path.join(folder, pat)) if os.path.isfile(p)]
        yield from _files(f"deb:{os.path.basename(folder)}", paths)


def man_pages() -> Iterator[Unit]:
    """Manual pages as `man` renders them to a terminal."""
    env = {"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8"}
    for path in sorted(glob.glob("/usr/share/man/man[1-8]/*.gz"))[::15]:
        name = os.path.basename(path).split(".")[0]
        try:
            done = subprocess.run(
                ["man", "-P", "cat", path], capture_output=True, env=env, timeout=10, check=False
            )
        except subprocess.TimeoutExpired:
            continue
        text = re.sub(r".\x08", "", done.stdout.decode("utf-8", "replace"))
        if len(text) > 300:
            yield f"man:{name}", text


def api_docs() -> Iterator[Unit]:
    """`pydoc` output of packages' modules: API documentation as a developer reads it."""
    env = {"PATH": os.path.dirname(os.path.realpath(sys.executable)), "LANG": "C.UTF-8", "PAGER": "cat"}
    python = os.path.join(os.path.dirname(SITE_PACKAGES[0]), "..", "..", "bin", "python")
    modules = [
        "json",
        "csv",
        "argparse",
        "pathlib",
        "tokenize",
        "difflib",
        "heapq",
        "bisect",
        "sched",
        "ftplib",
        "imaplib",
        "smtplib",
        "mailbox",
        "configparser",
        "plistlib",
        "wave",
        "zoneinfo",
        "pydantic",
        "lark",
        "regex",
        "grpc",
        "numpy",
        "pandas",
        "sklearn",
        "tokenizers",
        "yaml",
        "jinja2",
        "click",
        "requests",
        "urllib3",
        "packaging",
        "pytest",
        "hypothesis",
        "faker",
        "onnx",
        "sympy",
        "networkx",
        "filelock",
        "fsspec",
        "attr",
        "cryptography",
        "dateutil",
        "mypy",
        "pluggy",
        "iniconfig",
        "markupsafe",
        "certifi",
        "idna",
        "charset_normalizer",
    ]
    for name in modules:
        try:
            done = subprocess.run(
                [python, "-m", "pydoc", name], capture_output=True, env=env, timeout=60, check=False
            )
        except subprocess.TimeoutExpired:
            continue
        text = done.stdout.decode("utf-8", "replace")
        if done.returncode == 0 and len(text) > 500:
            yield f"pydoc:{name.split('.')[0]}", text[:MAX_FILE]


# --- web pages ------------------------------------------------------------------------------------


class _Text(html.parser.HTMLParser):
    """Visible text of a page: what a browsing tool hands the model (scripts and styles dropped)."""

    SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "svg", "head"}
    BLOCK: ClassVar[set[str]] = {
        "p",
        "div",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "br",
        "section",
        "dt",
        "dd",
    }

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skipping += tag in self.SKIP
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        self.skipping -= tag in self.SKIP and self.skipping > 0

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def page_text(page: str, keep_lines: bool = False) -> str:
    parser = _Text()
    parser.feed(page)
    text = "".join(parser.parts)
    if keep_lines:
        return text
    return re.sub(r"\n\s*\n+", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()


def _pages(unit: str, paths: list[str], raw: bool) -> Iterator[Unit]:
    for path in sorted(paths)[:PER_UNIT]:
        page = _read(path)
        text = page if raw else page_text(page)
        if len(text) > 300:
            yield unit, text


def _sites() -> list[tuple[str, list[str]]]:
    sites = [
        (f"rust:{name}", glob.glob(os.path.join(RUST_DOCS, name, "**/*.html"), recursive=True))
        for name in (
            "book",
            "cargo",
            "clippy",
            "edition-guide",
            "embedded-book",
            "nomicon",
            "reference",
            "rust-by-example",
            "rustc",
            "rustdoc",
            "style-guide",
            "unstable-book",
            "error_codes",
            "std/collections",
            "std/io",
            "std/fs",
            "std/net",
            "std/sync",
            "core/iter",
            "alloc/vec",
            "proc_macro",
        )
    ]
    sites += [
        (
            f"doc:{os.path.basename(os.path.dirname(d))}",
            glob.glob(os.path.join(d, "**/*.html"), recursive=True),
        )
        for d in sorted(glob.glob("/usr/share/doc/*/html"))
        if "python3.11-doc" not in d  # read part by part below
    ]
    python = "/usr/share/doc/python3.11-doc/html"
    sites += [(f"pydocs:{part}", glob.glob(os.path.join(python, part, "**/*.html"), recursive=True))
              for part in ("library", "tutorial", "howto", "reference", "using", "faq", "whatsnew",
                           "c-api", "extending", "distributing", "installing")]  # fmt: skip
    return sites


def web_text() -> Iterator[Unit]:
    for unit, paths in _sites():
        yield from _pages(unit, paths, raw=False)


def web_html() -> Iterator[Unit]:
    """Raw HTML, as a fetch tool returns it (the carrier of hidden-text attacks)."""
    for unit, paths in _sites():
        yield from _pages(unit, paths, raw=True)


SOURCES = [
    Source("python", "code", python_code),
    Source("c", "code", c_code),
    Source("javascript", "code", js_code),
    Source("typescript", "code", ts_code),
    Source("shell", "code", shell_code),
    Source("perl", "code", perl_code),
    Source("cmake", "code", cmake_code),
    Source("rust", "code", rust_code),
    Source("readme", "document", readmes),
    Source("licence", "document", licences),
    Source("debian-doc", "document", debian_docs),
    Source("man", "document", man_pages),
    Source("pydoc", "document", api_docs),
    Source("web-text", "web", web_text),
    Source("web-html", "html", web_html),
]


def chunks(text: str, low: int = 1000, high: int = 1200) -> list[str]:
    """Cut ``text`` into pieces of ``low``-``high`` characters at line ends where possible."""
    out: list[str] = []
    at = 0
    while len(text) - at >= low:
        end = text.rfind("\n", at + low, at + high)
        end = end + 1 if end > 0 else at + high
        piece = text[at:end].strip("\n")
        if len(piece.strip()) > low // 2:
            out.append(piece)
        at = end
    return out
