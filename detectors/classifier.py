"""The `classifier` detector: an ONNX text classifier over overlapping token windows."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
from tokenizers import Encoding, Tokenizer

from detectors import window_filter
from detectors.base import WARM_TEXT, DetectorError, DetectorResult, Finding, ModelVersion, check_deadline
from detectors.catalogue import ModelError, ModelInfo, file_sha256, resolve, verify
from detectors.specs import ClassifierParams, DetectorSettings

BATCH = 16  # windows per session run: enough for ~8,000 characters at once, bounded memory
# A long text is tokenized in pieces of PIECE_CHARS that overlap by OVERLAP_CHARS, with the deadline
# checked between them: one encode of 1,000,000 digits took 1.8 s of CPU that no deadline could cut,
# one piece takes tens of ms. Any span of up to OVERLAP_CHARS (a window is 128 tokens: a few hundred
# characters of prose, about 1,000 of digits) lies whole inside some piece.
PIECE_CHARS = 20_000
OVERLAP_CHARS = 2_000
CUT_SLACK = 500  # how far back a cut may move to a line or word boundary
_lock = threading.Lock()
_sessions: dict[tuple[str, int, int, bool], ort.InferenceSession] = {}
# onnxruntime's CPU SkipLayerNormalization kernel, which this fusion makes of a residual Add and the
# LayerNormalization after it, took 0.28 ms a node in our int8 model against 0.07 ms for the two
# unfused (one 128-token window: p50 6.22 -> 5.28 ms; fp32 models unchanged; benchmarks/CLASSIFIER.md).
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def providers() -> list[str]:
    """CUDA when this onnxruntime build has it (and so a GPU is expected), else the CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session(info: ModelInfo, threads: int = 0, spinning: bool = False) -> ort.InferenceSession:
    """One shared session per model file (as it is now) and thread settings; run() is thread-safe."""
    key = (info.onnx_path, os.stat(info.onnx_path).st_mtime_ns, threads, spinning)
    with _lock:
        found = _sessions.get(key)
        if found is None:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.intra_op_num_threads = threads  # 0: one per physical core
            options.inter_op_num_threads = 1
            # By default idle intra-op threads sleep: spinning burns the cores that the server's
            # other requests and detectors need (benchmarks/CLASSIFIER.md: at 50/s the input_guard
            # p95 fell from 109 ms to 31 ms, the server's CPU from 1.23 to 0.83 cores).
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            found = _sessions[key] = ort.InferenceSession(
                info.onnx_path, options, providers=providers(), disabled_optimizers=DISABLED_OPTIMIZERS
            )
    return found


@lru_cache(maxsize=16)
def tokenizer(folder: str, max_length: int, stride: int) -> Tokenizer:
    """A fast tokenizer that cuts a text into windows of ``max_length`` tokens overlapping by ``stride``.

    Configured once here and only read afterwards, so one instance serves every thread.
    """
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length, stride=stride)
    return tok


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a text: its token ids and the characters it covers in the whole text."""

    ids: list[int]
    start: int
    end: int

    @classmethod
    def of(cls, encoding: Encoding, base: int) -> Window:
        spans = [(s, e) for s, e in encoding.offsets if e > s]
        start, end = (spans[0][0], spans[-1][1]) if spans else (0, 0)
        return cls(encoding.ids, base + start, base + end)


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    """``text`` in pieces of up to PIECE_CHARS overlapping by about OVERLAP_CHARS, each with where it
    starts; cut after a newline, else after a space, so that no window starts mid-word."""
    start = 0
    while start + PIECE_CHARS < len(text):
        end = _cut(text, start + PIECE_CHARS)
        yield start, text[start:end]
        start = _cut(text, end - OVERLAP_CHARS)
    yield start, text[start:]


def _cut(text: str, at: int) -> int:
    """Where to cut ``text`` near ``at`` (never after it, at most CUT_SLACK before): just after the
    last newline, else the last space, else at ``at``."""
    low = at - CUT_SLACK
    for separator in ("\n", " "):
        found = text.rfind(separator, low, at)
        if found >= 0:
            return found + 1
    return at


def _batches(windows: list[Window]) -> list[list[Window]]:
    """Windows in batches of at most BATCH, in order. A short last window (under three quarters of
    the width) runs on its own, so that it is not padded to the full width (padding costs as much
    as text); a longer one joins the others: one run fewer beats a little padding (measured on the
    input_guard prompts, mostly two windows: p50 14.8 -> 13.6 ms)."""
    short = len(windows) > 1 and len(windows[-1].ids) * 4 < 3 * len(windows[0].ids)
    full, tail = (windows[:-1], windows[-1:]) if short else (windows, [])
    return [full[i : i + BATCH] for i in range(0, len(full), BATCH)] + ([tail] if tail else [])


class ClassifierDetector:
    """``classifier(model: NAME, label: L, threshold: 0.5)``: one finding when a window scores above."""

    def __init__(self, params: ClassifierParams, settings: DetectorSettings) -> None:
        try:
            info = resolve(params.model)
            verify(info, params.sha256)
            self._session = session(info, settings.classifier_threads, settings.classifier_spinning)
            # the model that findings come from: its name and the digest of the file loaded (the
            # pinned one, since verify passed; memoised, so not read twice)
            digest = "sha256:" + file_sha256(info.onnx_path)
            self.models: tuple[ModelVersion, ...] = (ModelVersion(info.name, digest),)
            self._filter = _load_filter(info) if params.prefilter else None
        except ModelError as exc:
            raise DetectorError(str(exc)) from exc
        except Exception as exc:  # onnxruntime's own errors: a corrupt or unsupported model file
            raise DetectorError(f"cannot load model `{params.model}`: {exc}") from exc
        max_length = min(params.max_length or info.max_length, info.max_length)
        stride = params.stride if params.stride is not None else max_length // 4
        self._info = info
        self._label = params.label or info.label
        self._index = info.labels.index(self._label)
        self._threshold = params.threshold
        self._width = max_length  # tokens in a full window
        self._tokenizer = tokenizer(info.path, max_length, min(stride, max_length // 2))
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._output = self._session.get_outputs()[0].name  # "logits" in a Hugging Face export
        self._pad = self._pad_id()

    def _pad_id(self) -> int:
        for token in ("[PAD]", "<pad>", "<PAD>"):
            found = self._tokenizer.token_to_id(token)
            if found is not None:
                return int(found)
        return 0  # the attention mask hides padding whatever its id

    def warm(self) -> None:
        """One inference per window width it runs: a short text's one window, and a full window (all
        of a long text's but its last), so that a first Check finds the session ready for both. Raises
        DetectorError when the model cannot run them (windows wider than it takes, for one)."""
        self.detect(WARM_TEXT)
        self.scores(self.windows(" ".join(["warm"] * self._width))[:1])  # a token or more each

    def detect(self, text: str) -> DetectorResult:
        """Score the windows of ``text`` (those the first pass picks, on a long text); report the best
        one if it reaches the threshold, with its span and which window it was. Stops between its steps
        once the request's deadline has passed (DeadlineExceeded)."""
        if not text.strip():
            return DetectorResult()
        windows = self.windows(text)
        check_deadline()
        picked = self._filter.pick([w.ids for w in windows]) if self._filter else list(range(len(windows)))
        chosen = [windows[i] for i in picked]
        scores = np.concatenate([self._scores_by_deadline(batch) for batch in _batches(chosen)])
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score < self._threshold:
            return DetectorResult()
        start, end = chosen[best].start, chosen[best].end
        detail = f"window {picked[best] + 1} of {len(windows)}"
        if len(picked) < len(windows):
            detail += f" ({len(picked)} scored after the first pass)"
        return DetectorResult((Finding(self._label, start, end, round(score, 6), detail),))

    def windows(self, text: str) -> list[Window]:
        """The windows of ``text``, a piece at a time (PIECE_CHARS), the deadline checked before each."""
        windows = []
        for base, piece in _pieces(text):
            check_deadline()
            encoding = self._tokenizer.encode(piece)
            windows += [Window.of(e, base) for e in (encoding, *encoding.overflowing)]
        return windows

    def _scores_by_deadline(self, windows: Sequence[Window]) -> npt.NDArray[np.float32]:
        """``scores(windows)`` if the request's deadline has not passed (DeadlineExceeded if it has)."""
        check_deadline()
        return self.scores(windows)

    def scores(self, windows: Sequence[Window]) -> npt.NDArray[np.float32]:
        """The label's probability for each window (one batched session run)."""
        width = max(len(w.ids) for w in windows)
        ids = np.full((len(windows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.int64)
        for row, window in enumerate(windows):
            ids[row, : len(window.ids)] = window.ids
            mask[row, : len(window.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        try:
            (logits,) = self._session.run(
                [self._output], {k: v for k, v in feed.items() if k in self._inputs}
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectorError(f"classifier `{self._info.name}` failed: {type(exc).__name__}") from exc
        return _probabilities(np.asarray(logits, dtype=np.float32), self._info.multi_label)[:, self._index]


def _load_filter(info: ModelInfo) -> window_filter.WindowFilter | None:
    spec = info.prefilter
    if spec is None:
        return None
    try:
        return window_filter.load(spec.path, spec.max_windows)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the prefilter of model `{info.name}`: {exc}") from exc


def _probabilities(logits: npt.NDArray[np.float32], multi_label: bool) -> npt.NDArray[np.float32]:
    if multi_label:
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float32)
