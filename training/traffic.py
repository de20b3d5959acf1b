"""Everyday-traffic sets: held-out evaluation sets by kind, validation sets and training windows."""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

from tokenizers import Tokenizer

from training.commands import COMMAND_SOURCES
from training.everyday import SOURCES, chunks, split_of
from training.generators import Example
from training.messages import developer_prompts, messages
from training.phrasing import composed_attack, composed_lookalike
from training.planted import (
    Payloads,
    at_position,
    in_code,
    in_email,
    in_html,
    in_json,
    in_link,
    in_readme,
    unseen,
)

KIND = {s.name: s.kind for s in SOURCES} | {name: "command" for name, _ in COMMAND_SOURCES}
Corpus = dict[str, list[tuple[str, str]]]  # source name -> (unit, text)
Pieces = dict[str, dict[str, list[tuple[str, str]]]]  # split -> source -> (unit, chunk)


def collect(cache: str) -> Corpus:
    """Every source's (unit, text), read or run once and kept in ``cache``/everyday.json."""
    path = os.path.join(cache, "everyday.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            loaded: Corpus = json.load(handle)
            return loaded
    corpus: Corpus = {}
    for name, units in [(s.name, s.units) for s in SOURCES] + COMMAND_SOURCES:
        corpus[name] = [(unit, text) for unit, text in units() if text]
        print(f"  {name}: {len(corpus[name])} texts", flush=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(corpus, handle)
    return corpus


def manifest(corpus: Corpus) -> dict[str, dict[str, object]]:
    """Per source: the units on each side and a sha256 over every text read (the inputs' digest)."""
    out: dict[str, dict[str, object]] = {}
    for name, rows in corpus.items():
        digest = hashlib.sha256()
        sides: dict[str, set[str]] = defaultdict(set)
        for unit, text in rows:
            digest.update(unit.encode() + b"\0" + text.encode() + b"\0")
            sides[split_of(unit)].add(unit)
        out[name] = {"sha256": digest.hexdigest(), "kind": KIND[name]} | {
            k: sorted(v) for k, v in sides.items()
        }
    return out


def pieces(corpus: Corpus) -> Pieces:
    """Chunks of 1,000-1,200 characters by split and source (raw HTML pages kept whole)."""
    out: Pieces = defaultdict(lambda: defaultdict(list))
    for name, rows in corpus.items():
        for unit, text in rows:
            cut = chunks(text, 1500, 3000) if name == "web-html" else chunks(text)
            out[split_of(unit)][name] += [(unit, c) for c in cut]
    return out


def _sample(rng: random.Random, pool: Sequence[tuple[str, str]], count: int) -> list[str]:
    """``count`` chunks spread over the units (round robin over shuffled units)."""
    by_unit: dict[str, list[str]] = defaultdict(list)
    for unit, text in pool:
        by_unit[unit].append(text)
    units = sorted(by_unit)
    rng.shuffle(units)
    for texts in by_unit.values():
        rng.shuffle(texts)
    out: list[str] = []
    while len(out) < count and any(by_unit.values()):
        for unit in units:
            if by_unit[unit] and len(out) < count:
                out.append(by_unit[unit].pop())
    return out


def _mixed(rng: random.Random, side: dict[str, list[tuple[str, str]]], kind: str, count: int) -> list[str]:
    names = [n for n in side if KIND[n] == kind]
    share = -(-count // max(1, len(names)))
    out = [t for n in names for t in _sample(rng, side[n], share)]
    rng.shuffle(out)
    return out[:count]


def everyday_sets(
    corpus: Corpus, side: str, seed: int, size: int, benign: int = 0
) -> dict[str, list[Example]]:
    """Benign and attack sets of one side (``heldout`` or ``val``), ``size`` texts each where there is
    text; the benign sets ``benign`` texts each if that is more (validation: a 0.3% threshold needs
    several hundred texts), the attacks planted in the first ``size`` of them."""
    rng = random.Random(seed)
    chunked = pieces(corpus)[side]
    payloads = Payloads(rng, heldout=side == "heldout")
    held = side == "heldout"
    many = max(size, benign)
    code = {n: _sample(rng, chunked[n], many) for n in chunked if KIND[n] == "code"}
    docs = _mixed(rng, chunked, "document", many)
    web = _mixed(rng, chunked, "web", many)
    html = _sample(rng, chunked["web-html"], size)
    command = _mixed(rng, chunked, "command", many)
    mail = [t for _, t in messages(seed, held, many)]
    emails = [t for u, t in messages(seed + 1, held, size) if u == "gen:email"]
    flat_code = [t for ts in code.values() for t in ts]
    sets = {
        "code": [t for ts in code.values() for t in ts[: -(-many // len(code))]][:many],
        "command": command,
        "document": docs,
        "web": web,
        "message": rng.sample(mail, min(many, len(mail))),
        "prompt": developer_prompts(seed, held, flat_code, command, many),
    }
    out: dict[str, list[Example]] = {f"benign-{k}": [(t, 0, k) for t in v] for k, v in sets.items()}
    planted_code = [(t, n) for n, ts in code.items() for t in ts[: -(-size // len(code))]][:size]
    docs, web = docs[:size], web[:size]
    attacks: dict[str, list[str]] = {
        "code-comment": [in_code(rng, t, lang, payloads.any()) for t, lang in planted_code],
        "readme": [in_readme(rng, t, payloads.any()) for t in docs],
        "html": [in_html(rng, t, payloads.any()) for t in html],
        "email": [in_email(rng, t, payloads.any()) for t in emails[:size]],
        "json": [in_json(rng, payloads.any(), t) for t in docs + web][:size],
        "link": [in_link(rng, t, payloads.any()) for t in web],
        "paraphrased": [in_readme(rng, t, payloads.paraphrased()) for t in _mix(rng, docs, web, command)][
            :size
        ],
        "multilingual": [in_readme(rng, t, payloads.foreign()) for t in _mix(rng, web, docs, mail)][:size],
    }
    long_texts = _long(rng, docs + web + command + flat_code, size)
    for where in ("start", "middle", "end"):
        attacks[f"long-{where}"] = [at_position(t, payloads.any(), where) for t in long_texts]
    out |= {f"attack-{k}": [(t, 1, k) for t in v] for k, v in attacks.items()}
    return out


def unseen_set(corpus: Corpus, seed: int, size: int) -> list[Example]:
    """Validation only: ``size`` validation-side texts, each with an instruction worded as nothing in
    training is (planted.unseen), planted the seven ways in turn (code, README, HTML, email, JSON,
    link, the start, middle or end of a long text); a generator of its own leaves the other sets
    as they were."""
    rng = random.Random(seed)
    chunked = pieces(corpus)["val"]
    code = [(n, t) for n in chunked if KIND[n] == "code" for t in _sample(rng, chunked[n], size)]
    docs, web = _mixed(rng, chunked, "document", size), _mixed(rng, chunked, "web", size)
    html, mail = _sample(rng, chunked["web-html"], size), [t for _, t in messages(seed, False, size)]
    long_texts = _long(rng, docs + web + [t for _, t in code], size)
    plant: list[Callable[[int], str]] = [
        lambda i: in_code(rng, code[i % len(code)][1], code[i % len(code)][0], unseen(rng)),
        lambda i: in_readme(rng, docs[i % len(docs)], unseen(rng)),
        lambda i: in_html(rng, html[i % len(html)], unseen(rng)),
        lambda i: in_email(rng, mail[i % len(mail)], unseen(rng)),
        lambda i: in_json(rng, unseen(rng), web[i % len(web)]),
        lambda i: in_link(rng, web[i % len(web)], unseen(rng)),
        lambda i: at_position(
            long_texts[i % len(long_texts)], unseen(rng), rng.choice(["start", "middle", "end"])
        ),
    ]
    return [(plant[i % len(plant)](i), 1, "unseen") for i in range(size)]


def _mix(rng: random.Random, *pools: list[str]) -> list[str]:
    out = [t for pool in pools for t in pool]
    rng.shuffle(out)
    return out


def _long(rng: random.Random, pool: list[str], count: int, low: int = 3000, high: int = 6000) -> list[str]:
    """Texts of ``low``-``high`` characters made of chunks drawn from ``pool``."""
    out = []
    for _ in range(count):
        parts: list[str] = []
        target = rng.randint(low, high)
        while sum(map(len, parts)) < target:
            parts.append(pool[rng.randrange(len(pool))])
        out.append("\n".join(parts))
    return out


def huge_sets(corpus: Corpus, seed: int, count: int) -> dict[str, list[Example]]:
    """Tool results of 90,000-100,000 characters from held-out sources, benign and with one planted
    instruction at a random line: where the first pass decides which windows the network scores."""
    rng = random.Random(seed)
    chunked = pieces(corpus)["heldout"]
    payloads = Payloads(rng, heldout=True)
    pool = [t for kind in ("command", "code", "document", "web") for t in _mixed(rng, chunked, kind, 400)]
    texts = _long(rng, pool, 2 * count, 90_000, 100_000)
    attacks = [in_readme(rng, t, payloads.any()) for t in texts[count:]]
    return {
        "test-huge-benign": [(t, 0, "huge") for t in texts[:count]],
        "test-huge-attack": [(t, 1, "huge") for t in attacks],
    }


# --- training windows -------------------------------------------------------------------------------

WINDOW_TOKENS = 126  # the model sees 128 with [CLS] and [SEP]


def fit(tok: Tokenizer, text: str, start: int, end: int, rng: random.Random) -> str:
    """A slice of ``text`` of at most WINDOW_TOKENS tokens that holds ``text[start:end]`` whole,
    placed at a random point of the window, as a stride would cut it."""
    offsets = [o for o in tok.encode(text, add_special_tokens=False).offsets if o[1] > o[0]]
    inside = [i for i, (s, e) in enumerate(offsets) if e > start and s < end]
    if not inside:
        return text[start:end]
    first, last = inside[0], inside[-1]
    room = WINDOW_TOKENS - (last - first + 1)
    if room <= 0:
        return text[offsets[first][0] : offsets[min(last, first + WINDOW_TOKENS - 1)][1]]
    before = min(first, rng.randint(0, room))
    after = min(len(offsets) - 1 - last, room - before)
    return text[offsets[first - before][0] : offsets[last + after][1]]


def locate(text: str, payload: str) -> tuple[int, int]:
    """Where ``payload`` landed in ``text``, as written or JSON-escaped (-1, -1 if nowhere)."""
    for form in (payload, json.dumps(payload, ensure_ascii=False)[1:-1], json.dumps(payload)[1:-1]):
        at = text.find(form)
        if at >= 0:
            return at, at + len(form)
    return -1, -1


def plant_window(tok: Tokenizer, rng: random.Random, plant: Callable[[str], str], payload: str) -> str:
    """Plant ``payload`` with ``plant``, then cut a window that holds it whole."""
    text = plant(payload)
    start, end = locate(text, payload)
    return fit(tok, text, start, end, rng) if start >= 0 else payload


def training_windows(
    corpus: Corpus, tok: Tokenizer, seed: int, counts: dict[str, int], side: str = "train"
) -> list[Example]:
    """Benign windows of every kind, attacks planted in every way, and look-alikes planted the same way,
    from one side's units (``train``; ``val`` for choosing the first pass's threshold)."""
    rng = random.Random(seed)
    chunked = pieces(corpus)[side]
    attack, benign = Payloads(rng, heldout=False), Payloads(rng, heldout=False)
    out: list[Example] = []
    for name, pool in chunked.items():
        if name == "web-html":
            continue
        for text in _sample(rng, pool, counts.get(KIND[name], 0) // max(1, _sources(chunked, KIND[name]))):
            start = rng.randrange(max(1, len(text) - 200))
            out.append((fit(tok, text, start, start + 1, rng), 0, f"everyday-{KIND[name]}"))
    mail = [t for _, t in messages(seed, False, counts["message"] // 3)]
    out += [(fit(tok, t, 0, 1, rng), 0, "everyday-message") for t in mail]
    code = [(n, t) for n in chunked if KIND[n] == "code" for t in _sample(rng, chunked[n], 400)]
    docs = _mixed(rng, chunked, "document", 2000) + _mixed(rng, chunked, "web", 1000)
    command = _mixed(rng, chunked, "command", 1500)
    html = _sample(rng, chunked["web-html"], 1500)
    prompts = developer_prompts(seed, False, [t for _, t in code], command, counts["prompt"])
    out += [(fit(tok, t, 0, 1, rng), 0, "everyday-prompt") for t in prompts]

    def planter(i: int) -> Callable[[str], str]:
        """The i-th way of planting (round robin: code, README, HTML, email, JSON, link, command
        output), its carrier drawn now."""
        way = i % 7
        if way == 0:
            language, source = rng.choice(code)
            return lambda p: in_code(rng, source, language, p)
        carrier = rng.choice([docs, html, mail, docs, docs, command][way - 1])
        return [
            lambda p: in_readme(rng, carrier, p),
            lambda p: in_html(rng, carrier, p),
            lambda p: in_email(rng, carrier, p),
            lambda p: in_json(rng, p, carrier),
            lambda p: in_link(rng, carrier, p),
            lambda p: at_position(carrier, p, rng.choice(["start", "middle", "end"])),
        ][way - 1]

    for i in range(counts["attack"]):
        out.append((plant_window(tok, rng, planter(i), attack.any()), 1, "planted-attack"))
    for i in range(counts["lookalike"]):
        out.append((plant_window(tok, rng, planter(i), benign.lookalike()), 0, "planted-lookalike"))
    for i in range(counts.get("composed", 0)):  # planted.py's phrasings are few: composed ones, many
        out.append((plant_window(tok, rng, planter(i), composed_attack(rng)), 1, "planted-composed"))
    for i in range(counts.get("composed-lookalike", 0)):
        lookalike = composed_lookalike(rng)
        out.append((plant_window(tok, rng, planter(i), lookalike), 0, "planted-composed-lookalike"))
    return out


def _sources(chunked: dict[str, list[tuple[str, str]]], kind: str) -> int:
    return sum(1 for n in chunked if KIND[n] == kind and n != "web-html")


# --- the rulesets' everyday-traffic files -------------------------------------------------------------

TOOLS = {"code": "fs.read", "command": "shell.exec", "document": "fs.read", "web": "http.request"}
# ruleset -> (stage, the held-out benign kinds and attack kinds it sees there, rows per kind)
RULESET_TRAFFIC = {
    "coding_agent": [
        ("tool_result", ["code", "command", "document", "web"], 60),
        ("input", ["prompt"], 60),
        ("tool_result", ["code-comment", "readme", "html", "json", "link", "paraphrased", "multilingual",
                         "long-start", "long-middle", "long-end"], 30),
    ],
    "rag_assistant": [
        ("retrieval", ["document", "web", "message"], 100),
        ("retrieval", ["readme", "html", "email", "json", "link", "paraphrased", "multilingual",
                       "long-start", "long-middle", "long-end"], 30),
    ],
}  # fmt: skip


def _request(ruleset: str, stage: str, kind: str, text: str) -> dict[str, object]:
    request: dict[str, object] = {"stage": stage, "text": text}
    if ruleset == "rag_assistant":
        request["principal"] = {"id": "u-1", "tenant": "acme"}
        request["metadata"] = {"tenant": "acme", "source": "confluence", "doc_id": f"{kind}"}
    elif stage == "tool_result":
        request["tool"] = {"name": TOOLS.get(kind, "http.request"), "server": "builtin"}
    return request


def traffic_rows(sets: dict[str, list[Example]], ruleset: str) -> list[dict[str, object]]:
    """Labelled Check requests for ``ruleset`` from the held-out test sets (``test-benign-*``,
    ``test-attack-*``): what `palisade score` gates on in `make test`."""
    rows: list[dict[str, object]] = []
    for stage, kinds, per_kind in RULESET_TRAFFIC[ruleset]:
        for kind in kinds:
            name = next(n for n in (f"test-benign-{kind}", f"test-attack-{kind}") if n in sets)
            for text, label, _ in sets[name][:per_kind]:
                kind_name = name.removeprefix("test-")
                rows.append(
                    {"label": label, "kind": kind_name, "request": _request(ruleset, stage, kind, text)}
                )
    return rows
