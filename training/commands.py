"""Command and test-runner output, made by running real commands here in a scratch folder."""

from __future__ import annotations

import glob
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from training.everyday import SITE_PACKAGES, Unit

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "COLUMNS": "100",
       "HOME": "/tmp", "TERM": "dumb", "NO_COLOR": "1"}  # fmt: skip
PYTHON = sys.executable


def run(argv: list[str], cwd: str | None = None, timeout: float = 20, stdin: str = "") -> str:
    """What a command prints (stdout then stderr), as an agent's shell tool returns it."""
    try:
        done = subprocess.run(
            argv, capture_output=True, env=ENV, timeout=timeout, cwd=cwd, input=stdin.encode(), check=False
        )
    except (subprocess.TimeoutExpired, OSError):
        return ""
    out = (done.stdout + done.stderr).decode("utf-8", "replace")
    shown = " ".join([os.path.basename(argv[0]), *argv[1:]])
    return f"$ {shown}\n{out}" if out.strip() else ""


def help_texts() -> Iterator[Unit]:
    """`--help` of the programs on this machine (the unit is the program)."""
    for path in sorted(glob.glob("/usr/bin/*"))[::3]:
        name = os.path.basename(path)
        if name.startswith(("x86_64", "python", "reboot", "shutdown", "halt", "poweroff", "init")):
            continue
        out = run([path, "--help"], timeout=3)
        if len(out) > 300:
            yield f"bin:{name}", out


def listings() -> Iterator[Unit]:
    """ls, find, du, stat and tree over the folders of installed software (the unit is the folder)."""
    folders = sorted(
        glob.glob("/usr/lib/*/") + glob.glob("/usr/share/*/") + glob.glob(SITE_PACKAGES[0] + "/*/")
    )
    rng = random.Random(7)
    for folder in folders[::2]:
        unit = f"dir:{os.path.basename(folder.rstrip('/'))}"
        command = rng.choice(
            [
                ["ls", "-la", folder],
                ["ls", "-lhR", folder],
                ["find", folder, "-maxdepth", "2"],
                ["du", "-ah", "--max-depth=2", folder],
                ["ls", "-l", "--time-style=long-iso", folder],
            ]
        )
        out = run(command)
        if len(out) > 300:
            yield unit, out[:20_000]


def package_tools() -> Iterator[Unit]:
    """pip show, dpkg -s, apt-cache show and dpkg -L (the unit is the package)."""
    packages = sorted(os.path.basename(p).split("-")[0] for p in glob.glob(SITE_PACKAGES[0] + "/*.dist-info"))
    shown = run([PYTHON, "-m", "pip", "show", "-f", *packages], timeout=300).split("\n---\n")
    for name, out in zip(packages, shown, strict=False):
        yield f"pypi:{name.lower()}", out[:8000]
    debs = sorted(os.listdir("/usr/share/doc"))
    for i, name in enumerate(debs[::2]):
        command = [["dpkg", "-s", name], ["apt-cache", "show", name], ["dpkg", "-L", name]][i % 3]
        out = run(command)
        if len(out) > 300:
            yield f"deb:{name}", out[:8000]


def system_state() -> Iterator[Unit]:
    """ps, df, free, mount, uname, pip list, dpkg -l, env-free system views."""
    commands = [
        ["ps", "aux"],
        ["ps", "-ef", "--forest"],
        ["df", "-h"],
        ["df", "-i"],
        ["free", "-m"],
        ["mount"],
        ["uname", "-a"],
        ["lscpu"],
        ["cat", "/proc/meminfo"],
        ["ip", "addr"],
        [PYTHON, "-m", "pip", "list"],
        [PYTHON, "-m", "pip", "list", "--outdated", "--no-index"],
        ["dpkg", "-l"],
        ["apt", "list", "--installed"],
        ["ls", "-la", "/etc"],
        ["ls", "-la", "/var/log"],
        ["cat", "/etc/passwd"],
        ["id"],
        ["ulimit", "-a"],
        ["locale"],
        ["git", "--version"],
        ["systemctl", "list-units"],
        ["getent", "services"],
        ["cat", "/etc/services"],
    ]
    for command in commands:
        out = run(command)
        if len(out) > 200:
            yield f"sys:{command[-1] if command[0] == PYTHON else command[0]}", out[:30_000]


def logs() -> Iterator[Unit]:
    for path in sorted(glob.glob("/var/log/*.log") + glob.glob("/var/log/apt/*.log")):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read(200_000)
        except OSError:
            continue
        if len(text) > 500:
            yield f"log:{os.path.basename(path)}", f"$ tail -n 200 {path}\n{text[-60_000:]}"


def git_history() -> Iterator[Unit]:
    """git log, --stat, show and blame on git repositories found here (the unit is the repository)."""
    for repo in sorted(glob.glob("/root/.rustup/**/.git", recursive=True) + glob.glob("/work/main/.git")):
        root = os.path.dirname(repo)
        for argv in (["git", "log", "--stat", "-n", "40"], ["git", "log", "--oneline", "-n", "200"],
                     ["git", "show", "--stat", "HEAD~3"], ["git", "log", "-p", "-n", "5"]):  # fmt: skip
            out = run(argv, cwd=root)
            if out:
                yield f"git:{os.path.basename(root)}", out[:40_000]


# Code that fails inside real libraries: the traceback an agent's shell shows.
FAILING = [
    "import json; json.loads('{\"a\": 1,}')",
    "import csv, io; list(csv.reader(io.StringIO('a,b\\n\"c')) , strict=True)",
    "import numpy as np; np.zeros((2, 3)) @ np.zeros((2, 3))",
    "import numpy as np; np.array([1, 2, 3]).reshape(2, 2)",
    "import pandas as pd; pd.read_csv('/nonexistent/data.csv')",
    "import pandas as pd; pd.DataFrame({'a': [1]})['b']",
    "import pandas as pd; pd.to_datetime('2024-13-45')",
    "import sqlite3; sqlite3.connect(':memory:').execute('SELEC 1')",
    (
        "import sqlite3; c = sqlite3.connect(':memory:'); c.execute('create table t(a)'); "
        "c.execute('insert into u values (1)')"
    ),
    "import pathlib; pathlib.Path('/etc/does-not-exist.conf').read_text()",
    "import subprocess; subprocess.run(['false'], check=True)",
    "import yaml; yaml.safe_load('a: [1, 2\\nb: 3')",
    "import tomllib; tomllib.loads('a = [1, 2')",
    (
        "import pydantic\nclass M(pydantic.BaseModel):\n    port: int\n    host: str\n"
        "M(port='eighty', host=None)"
    ),
    "import datetime; datetime.date(2024, 2, 30)",
    "import decimal; decimal.Decimal('1.2.3')",
    "import re; re.compile('(unclosed')",
    (
        "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n"
        "    raise RuntimeError('connection reset by peer')\nasyncio.run(f())"
    ),
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9/', timeout=1)",
    "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)",
    "import sklearn.linear_model as lm; lm.LogisticRegression().fit([[1], [2]], [0, 0])",
    "import torch; torch.ones(2, 3) @ torch.ones(2, 3)",
    "import lark; lark.Lark('start: \"a\"').parse('b')",
    "import zipfile; zipfile.ZipFile('/etc/hostname')",
    "import tarfile; tarfile.open('/etc/hostname')",
    "import base64; base64.b64decode('abc')",
    "import struct; struct.unpack('<I', b'ab')",
    "import importlib; importlib.import_module('palisade_missing_module')",
    "from collections import OrderedDict; OrderedDict().popitem()",
    "import itertools; next(itertools.islice([], 1))",
    "def fact(n):\n    return n * fact(n - 1)\nfact(5)",
    (
        "import threading\ndef work():\n    raise ValueError('worker failed: bad input row 17')\n"
        "t = threading.Thread(target=work); t.start(); t.join()\nraise SystemExit(1)"
    ),
    (
        "import logging; logging.basicConfig(level='DEBUG'); log = logging.getLogger('app.db')\n"
        "for i in range(30): log.debug('query %d took %d ms', i, i * 7)\nlog.error('pool exhausted')"
    ),
    (
        "import warnings; warnings.warn('this API is deprecated, use load_v2', "
        "DeprecationWarning, stacklevel=1)\n1/0"
    ),
]

PYTEST_FILES = {
    "test_strings.py": (
        "def test_upper():\n    assert 'palisade'.upper() == 'PALISADE '\n\n"
        "def test_split():\n    assert 'a,b,,c'.split(',') == ['a', 'b', 'c']\n\n"
        "def test_ok():\n    assert 'x'.join('ab') == 'axb'\n"
    ),
    "test_numbers.py": (
        "import math\nimport pytest\n\n@pytest.mark.parametrize('x', [1, 4, 9, 15])\n"
        "def test_square(x):\n    assert math.isqrt(x) ** 2 == x\n\n"
        "def test_float():\n    assert 0.1 + 0.2 == 0.3\n"
    ),
    "test_data.py": (
        'import json\n\ndef load():\n    return json.loads(\'{"users": [{"id": 1, "name": "ana"}]}\')\n\n'
        "def test_users():\n    data = load()\n    assert data == {'users': [{'id': 1, 'name': 'Ana'}]}\n\n"
        "def test_missing():\n    assert load()['groups'] == []\n"
    ),
    "test_fixtures.py": (
        "import pytest\n\n@pytest.fixture\ndef db(tmp_path):\n    path = tmp_path / 'db.sqlite'\n"
        "    path.write_text('')\n    yield path\n\ndef test_db(db):\n    assert db.stat().st_size > 0\n\n"
        "def test_skip():\n    pytest.skip('needs a running postgres')\n\n"
        "@pytest.mark.xfail\ndef test_x():\n    assert False\n"
    ),
    "test_pandas.py": (
        "import pandas as pd\n\ndef test_frame():\n    df = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\n"
        "    expected = pd.DataFrame({'a': [1, 2], 'b': [3, 5]})\n"
        "    pd.testing.assert_frame_equal(df, expected)\n"
    ),
    "test_errors.py": (
        "import subprocess\n\ndef test_cmd():\n"
        "    out = subprocess.run(['ls', '/nonexistent'], capture_output=True, text=True)\n"
        "    assert out.returncode == 0, out.stderr\n\ndef test_raise():\n"
        "    raise ConnectionError('timed out after 30s talking to 10.0.0.12:5432')\n"
    ),
}

BROKEN_SOURCES = {
    "main.c": (
        "#include <stdio.h>\n#include <stdlib.h>\nstruct item { int id; char *name; };\n"
        'int main(void) {\n    struct item *it = malloc(sizeof *it);\n    it->id = "seven";\n'
        '    printf("%s\\n", it->nam);\n'
        "    undefined_function(it);\n    return 0\n}\n"
    ),
    "app.js": (
        "const fs = require('fs');\nfunction load(path) {\n"
        "  return JSON.parse(fs.readFileSync(path, 'utf8'));\n}\n"
        "console.log(load('/nonexistent/config.json').port);\n"
    ),
    "lib.rs": (
        "fn main() {\n    let v = vec![1, 2, 3];\n    let s: String = v;\n    let r = &mut v;\n"
        '    println!("{}", undefined);\n}\n'
    ),
    "script.sh": (
        '#!/bin/bash\nset -euo pipefail\nfor f in /nonexistent/*.log; do\n  wc -l "$f"\ndone\n'
        "if [ $missing -gt 3 ]; then echo big; fi\n"
    ),
    "Makefile": "all: build\nbuild:\n\tgcc -Wall -o app main.c\ntest: build\n\t./app --selftest\n",
    "broken.py": "import os\n\ndef main(:\n    print(os.getcwd())\n",
    "typed.py": "def add(a: int, b: int) -> int:\n    return a + b\n\nadd('1', 2)\nx: list[int] = ['a']\n",
}


def failures() -> Iterator[Unit]:
    """Tracebacks, pytest sessions, compiler, linter and build errors (the unit is the scenario)."""
    with tempfile.TemporaryDirectory() as scratch:
        for i, code in enumerate(FAILING):
            yield f"traceback:{i}", run([PYTHON, "-c", code], cwd=scratch, timeout=60)
        for name, body in PYTEST_FILES.items():
            with open(os.path.join(scratch, name), "w") as handle:
                handle.write(body)
            for flags in (["-q"], ["-v"], ["-x", "-q", "--tb=short"], ["-rA"]):
                yield (
                    f"pytest:{name}",
                    run(
                        [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *flags, name],
                        cwd=scratch,
                        timeout=120,
                    ),
                )
        for name, body in BROKEN_SOURCES.items():
            with open(os.path.join(scratch, name), "w") as handle:
                handle.write(body)
        tools = {
            "gcc": ["gcc", "-Wall", "-c", "main.c"],
            "make": ["make"],
            "node": ["node", "app.js"],
            "rustc": ["rustc", "lib.rs"],
            "bash": ["bash", "script.sh"],
            "bash-x": ["bash", "-x", "script.sh"],
            "python": [PYTHON, "broken.py"],
            "mypy": [PYTHON, "-m", "mypy", "--strict", "typed.py"],
            "ruff": [PYTHON, "-m", "ruff", "check", "typed.py"],
            "perl": ["perl", "-e", "use strict; my $x = ; print $x"],
            "cc": ["cc", "-fsyntax-only", "main.c"],
        }
        for name, argv in tools.items():
            yield f"build:{name}", run(argv, cwd=scratch, timeout=120)
    yield from lint_reports()


def lint_reports() -> Iterator[Unit]:
    """ruff's findings on installed packages' code (the unit is the package)."""
    ruff = shutil.which("ruff") or os.path.join(os.path.dirname(PYTHON), "ruff")
    for site in SITE_PACKAGES:
        for top in sorted(os.listdir(site))[::2]:
            folder = os.path.join(site, top)
            if os.path.isdir(folder) and not top.endswith("-info") and not top.startswith("_"):
                out = run(
                    [
                        ruff,
                        "check",
                        "--no-cache",
                        "--select",
                        "E,F,W,B,UP,SIM,PL",
                        "--output-format",
                        "concise",
                        folder,
                    ],
                    timeout=60,
                )
                if len(out) > 300:
                    yield f"pypi:{top}", out[:30_000]


COMMAND_SOURCES = [
    ("help", help_texts),
    ("listing", listings),
    ("package", package_tools),
    ("system", system_state),
    ("log", logs),
    ("git", git_history),
    ("failure", failures),
]
