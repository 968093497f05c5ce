"""Guard: load a bundle, classify a prompt or a prompt and its response, get a Verdict."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from guard_sdk.backends import (
    BACKENDS,
    Backend,
    auto_order,
    backend_format,
    check_platform,
    default_threads,
    open_backend,
    runs_here,
)
from guard_sdk.bundle import (
    MANIFEST_NAME,
    Artifact,
    Manifest,
    parse_manifest,
    read_manifest_bytes,
    verified_bytes,
    verified_source,
    verify_bundle,
)
from guard_sdk.errors import (
    BackendUnavailableError,
    BundleError,
    DefaultGuardMissingError,
    GuardError,
    InputError,
    InputTooLongError,
    InputTypeError,
    ManifestError,
    UnknownFormatError,
)
from guard_sdk.policy import Policy, PolicyLike, as_policy, decide
from guard_sdk.tokenization import TextEncoder, Window, pad_batch
from guard_sdk.views import SENTENCES, as_read, sentences, views

if TYPE_CHECKING:
    from guard_sdk.signing import TrustedKeys
    from guard_sdk.stream import StreamGuard

# "auto" precision takes the first of these that the bundle holds: smallest and fastest first.
PRECISION_ORDER: tuple[str, ...] = ("int8", "fp16", "fp32")
# Above this a text is refused rather than tokenized: 1 MB of text tokenizes in under 2 s and 0.6 GB at worst
# (a million "!", each a token: 9,091 windows of the embedded guard, 1.7 s, measured on the 2-core VM).
MAX_INPUT_CHARS = 1_000_000
# Above this many windows a text is refused (InputTooLongError) rather than scored: its cost is bounded before the
# model runs. 256 windows of the embedded guard cover about 25,000 tokens (some 100 kB of English), and a harm
# hidden anywhere in them is still seen; sampling fewer windows would let it hide in the skipped ones.
MAX_WINDOWS = 256
DEFAULT_BUNDLE = "models/default"
DEFAULT_BUNDLE_NAME = "default"  # how a command or a recipe names the embedded default guard
LABEL_OUTPUTS = 2  # a model's first outputs: the logits of its two labels (safe, unsafe); its categories' follow
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The guard's answer for one input.

    ``score`` is P(unsafe) of the most unsafe window; ``unsafe`` is ``score >= threshold`` (under a policy, as
    guard_sdk.policy decides); ``windows`` says how many windows of max_length tokens were scored, over every
    view. ``view``: the view of the text that window belongs to ("raw", or one of guard_sdk.views' that the
    bundle declares: "normalized", "decoded", "payload"). ``categories``: each harm category the bundle scores, its
    P(category) in the window where it is highest (empty for a bundle without categories); ``violations``:
    those at or over their thresholds that the policy enforces, most confident first.
    """

    unsafe: bool
    score: float
    threshold: float
    label: str
    windows: int
    categories: dict[str, float] = field(default_factory=dict)
    violations: tuple[str, ...] = ()
    view: str = "raw"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def default_bundle_path() -> Path:
    """Where the embedded default guard lives inside the installed package."""
    return Path(str(resources.files("guard_sdk").joinpath(DEFAULT_BUNDLE)))


def check_text(value: object, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InputTypeError(f"{what} must be a str, got {type(value).__name__}")
    if len(value) > max_chars:
        raise InputTooLongError(f"{what} has {len(value):,} characters; the limit is {max_chars:,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{what} is not valid UTF-8 text (lone surrogate at character {e.start})") from e
    return value


def _candidates(manifest: Manifest, backend: str, precision: str) -> list[tuple[str, Artifact]]:
    """(backend, artifact) pairs to try, best first, following the user's choice or the 'auto' orders."""
    if precision != "auto" and precision not in {a.precision for a in manifest.artifacts}:
        held = ", ".join(sorted({a.precision for a in manifest.artifacts}))
        raise UnknownFormatError(f"the bundle has no {precision!r} artifact; it holds: {held}")
    backends = auto_order() if backend == "auto" else (backend,)
    others = sorted({a.precision for a in manifest.artifacts} - set(PRECISION_ORDER))  # int4, palette4: last
    precisions = (*PRECISION_ORDER, *others) if precision == "auto" else (precision,)
    found = [(name, artifact) for name in backends for prec in precisions for artifact in manifest.artifacts
             if artifact.format == backend_format(name) and artifact.precision == prec]
    if not found:
        held = "; ".join(f"{a.path} ({a.format} {a.precision})" for a in manifest.artifacts)
        raise UnknownFormatError(
            f"no artifact for backend {backend!r} and precision {precision!r}: the bundle holds {held}; "
            f"backend {backend!r} runs the formats {', '.join(sorted({BACKENDS[b].format for b in backends}))}"
        )
    return found


def _runnable_here(manifest: Manifest) -> str:
    """The bundle's artifacts that some backend runs on this platform, for error messages."""
    here = {info.format: name for name, info in BACKENDS.items() if runs_here(name)}
    found = [f"{a.path} ({a.format} {a.precision}: backend={here[a.format]!r})"
             for a in manifest.artifacts if a.format in here]
    return "; ".join(found) or "none"


class Guard:
    """A loaded guard bundle. Safe to call from several threads at once: it holds no mutable state."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        artifact: Artifact,
        backend: Backend,
        encoder: TextEncoder,
        batch_size: int,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.artifact = artifact
        self.backend = backend
        self.encoder = encoder
        self.batch_size = batch_size
        self.max_input_chars = MAX_INPUT_CHARS
        self.max_windows = MAX_WINDOWS  # Guard.load sets the cap it was given
        self.policy = Policy()  # Guard.load sets the one it was given

    @property
    def categories(self) -> list[str]:
        """The harm categories this bundle scores (docs/taxonomy.md); none for a bundle without a category head."""
        return [c.name for c in self.manifest.categories]

    def _checked(self, policy: PolicyLike) -> Policy:
        found = as_policy(policy)
        if found is None:
            return Policy()
        found.check(self.categories)
        return found

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        backend: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        batch_size: int = 8,
        policy: PolicyLike = None,
        trusted_keys: TrustedKeys | None = None,
        max_windows: int = MAX_WINDOWS,
    ) -> Guard:
        """Load a bundle folder (the embedded default guard when ``path`` is None).

        ``backend``: "auto" (the fastest that runs here and that the bundle holds, see
        ``guard_sdk.backends.auto_order``; the choice is logged and kept in ``guard.backend.name``) or a
        name in ``guard_sdk.backends.BACKENDS``; ``precision``: "auto" (int8, then fp16, then fp32,
        then any other the bundle holds) or one the bundle holds; ``threads``: intra-op threads, or None for
        the runtime's choice per bundle: 1 for a model under 100M parameters (the embedded guard), else the
        physical cores, at most 4 (``guard_sdk.backends.default_threads`` says why; ``guard.threads`` says
        what was chosen); ``batch_size``: windows per model call, which bounds memory (an artifact
        with dynamically quantized activations runs one window per call: see ``windows_per_call``);
        ``policy``: which harm categories to enforce (guard_sdk.policy: a Policy, its JSON object, or a policy
        file), for every call that gives none of its own; ``trusted_keys``: an Ed25519 public key or several (PEM
        files or their bytes, guard_sdk.signing): the bundle must carry one's signature of its guard.json, else
        SignatureError; ``max_windows``: a text needing more windows of max_length tokens than this is refused
        with InputTooLongError before the model runs (``MAX_WINDOWS`` says why 256).

        Every file is read once, never through a link, and loaded from the bytes its sha256 was checked on
        (guard_sdk.bundle_files), so nothing can be swapped between the check and the use.
        """
        if path is None:
            path = default_bundle_path()
            if not (path / MANIFEST_NAME).is_file():
                raise DefaultGuardMissingError(
                    f"{path}: this installation has no embedded default guard (a build without package data?); "
                    "reinstall guard-sdk, rebuild it with `make default-guard`, or export your own with "
                    "`guard-sdk export CHECKPOINT -o my-guard` and load it with Guard.load('my-guard')",
                    path,
                )
        if not isinstance(path, (str, os.PathLike)):
            raise InputTypeError(f"path must be a bundle folder (str or Path) or None, got {type(path).__name__}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise InputError(f"threads must be a positive int or None, got {threads!r}")
        for knob, value in (("batch_size", batch_size), ("max_windows", max_windows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{knob} must be a positive int, got {value!r}")
        path = Path(path)
        data = read_manifest_bytes(path)
        if trusted_keys is not None:
            from guard_sdk.signing import check_signature

            check_signature(path, data, trusted_keys)
        manifest = parse_manifest(data, path / MANIFEST_NAME)
        candidates = _candidates(manifest, backend, precision)
        encoder = TextEncoder(verified_bytes(path, manifest.tokenizer), manifest.max_length, manifest.text,
                              path / manifest.tokenizer.path)
        unavailable = []
        for name, artifact in candidates:
            try:
                check_platform(name)  # before hashing a model this platform cannot run
                count = default_threads(manifest, artifact) if threads is None else threads
                runner = open_backend(name, verified_source(path, artifact), count, manifest.output,
                                      manifest.inputs, requested=threads is not None, where=path / artifact.path)
            except BackendUnavailableError as e:
                unavailable.append(str(e))
                continue
            if backend == "auto":
                log.info("backend auto: %s runs %s (%s %s)", name, artifact.path, artifact.format, artifact.precision)
            per_call = windows_per_call(artifact.quantization, artifact.batch, batch_size)
            guard = cls(path, manifest, artifact, runner, encoder, per_call)
            guard.max_windows = max_windows
            guard.policy = guard._checked(policy)
            return guard
        raise BackendUnavailableError(
            f"{'; '.join(unavailable)}. What this bundle holds that runs here: {_runnable_here(manifest)}"
        )

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def threads(self) -> int | None:
        """The intra-op threads the backend runs with (asked for, or the runtime's default); None for Core ML,
        which schedules its own."""
        return self.backend.threads

    def __repr__(self) -> str:
        a = self.artifact
        return f"Guard({self.manifest.name!r}, {a.path}, backend={self.backend.name}, threshold={self.threshold})"

    def classify(self, prompt: str, response: str | None = None, *, threshold: float | None = None,
                 policy: PolicyLike = None) -> Verdict:
        """Is this prompt (or, with ``response``, this response to it) unsafe, and of which harm? ``policy``
        replaces the guard's own for this call."""
        # errors name the argument passed ("prompt"), not the batch's "prompts[0]"
        verdict = self._classify([prompt], None if response is None else [response], threshold, policy,
                                 lambda _, what: what)[0]
        assert isinstance(verdict, Verdict)  # an error was raised, not returned
        return verdict

    __call__ = classify

    @overload
    def classify_batch(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None, *,
                       threshold: float | None = None, policy: PolicyLike = None,
                       errors: Literal["raise"] = "raise") -> list[Verdict]: ...

    @overload
    def classify_batch(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None, *,
                       threshold: float | None = None, policy: PolicyLike = None,
                       errors: Literal["return"]) -> list[Verdict | InputError]: ...

    def classify_batch(
        self,
        prompts: Sequence[str],
        responses: Sequence[str | None] | None = None,
        *,
        threshold: float | None = None,
        policy: PolicyLike = None,
        errors: Literal["raise", "return"] = "raise",
    ) -> list[Verdict] | list[Verdict | InputError]:
        """Classify many inputs; ``responses``, when given, pairs with ``prompts`` one to one.

        ``errors``: "raise" (the default) raises the first bad item's InputError (a text that is not a str, not
        valid Unicode, over ``max_input_chars`` or ``max_windows``) and scores nothing; "return" puts that error
        in the bad item's place and scores the rest. Arguments that concern the whole call (prompts not a
        sequence, responses of another length, a bad threshold or policy) raise either way."""
        if errors not in ("raise", "return"):
            raise InputError(f"errors must be 'raise' or 'return', got {errors!r}")
        return self._classify(prompts, responses, threshold, policy, lambda i, what: f"{what}s[{i}]",
                              errors == "return")

    def _classify(self, prompts: Sequence[str], responses: Sequence[str | None] | None, threshold: float | None,
                  policy: PolicyLike, name: Callable[[int, str], str],
                  keep_going: bool = False) -> list[Verdict | InputError]:
        """``classify_batch``; ``name(i, "prompt")`` is how an error names the i-th text; ``keep_going``: a bad
        item's InputError takes its place instead of being raised."""
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise InputTypeError(f"prompts must be a sequence of str, got {type(prompts).__name__}")
        if responses is not None and (isinstance(responses, str) or not isinstance(responses, Sequence)
                                      or len(responses) != len(prompts)):
            raise InputError("responses must be a sequence as long as prompts, with None where there is none")
        cut, rule = self._cut(threshold), self.policy if policy is None else self._checked(policy)
        results: list[Verdict | InputError | None] = [None] * len(prompts)
        windows: list[tuple[str, Window]] = []
        scored: list[int] = []  # the items whose windows are in ``windows``, in owner order
        for i, prompt in enumerate(prompts):
            try:
                found = self._windows(prompt, None if responses is None else responses[i], i, len(scored), name)
            except InputError as e:
                if not keep_going:
                    raise
                results[i] = e
                continue
            windows.extend(found)
            scored.append(i)
        for i, verdict in zip(scored, self._verdicts(windows, len(scored), cut, rule)):
            results[i] = verdict
        return [r for r in results if r is not None]

    def _cut(self, threshold: float | None) -> float:
        """The threshold a call decides at: its own, checked, or the bundle's."""
        if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)):
            raise InputTypeError(f"threshold must be a number in [0, 1] or None, got {type(threshold).__name__}")
        cut = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= cut <= 1.0:
            raise InputError(f"threshold must lie in [0, 1], got {threshold!r}")
        return cut

    def stream(self, prompt: str, *, threshold: float | None = None, policy: PolicyLike = None) -> StreamGuard:
        """Judge ``prompt``'s response as it streams: ``feed(chunk)`` after each chunk gives the verdict on the
        response so far and the first chunk at which it was unsafe (guard_sdk.stream)."""
        from guard_sdk.stream import StreamGuard

        return StreamGuard(self, prompt, self._cut(threshold), self.policy if policy is None else self._checked(policy))

    def scored_windows(self, prompt: str, response: str | None = None) -> list[tuple[str, Window]]:
        """The windows ``classify`` scores for one input, each with its view (what the Android vectors record)."""
        return self._windows(prompt, response, 0, 0, lambda _, what: what)

    def _windows(self, prompt: object, response: object, i: int, owner: int,
                 name: Callable[[int, str], str]) -> list[tuple[str, Window]]:
        """The (view, window) pairs of item ``i`` (numbered ``owner`` among the scored ones), or its InputError:
        the windows of the text (unless another view reads it: guard_sdk.views.views), then of each view the bundle
        declares whose text differs, then (``sentences``) each sentence of the prompt as read whose window holds it
        whole, alone or beside the response as read."""
        p = check_text(prompt, name(i, "prompt"), self.max_input_chars)
        r = None if response is None else check_text(response, name(i, "response"), self.max_input_chars)
        declared = self.manifest.views
        names = tuple(declared.names) if declared is not None else ()
        fold = declared.fold if declared is not None else {}
        prompts = views(p, names, fold)
        responses = views(r, names, fold) if r is not None else {}
        found: list[tuple[str, Window]] = []
        seen: set[tuple[str, str | None]] = set()
        for view in ("raw", *(name for name in names if name != SENTENCES)):
            if view not in prompts or (r is not None and view not in responses):
                continue  # a disguise as written, where another view reads prompt or response (``views``)
            pair = (prompts[view], responses[view] if r is not None else None)
            if pair not in seen:
                seen.add(pair)
                found += [(view, w) for w in self.encoder.windows(pair[0], pair[1], owner=owner)]
        if SENTENCES in names:  # each sentence of the prompt as read, alone or beside the response as read
            reply = None if r is None else as_read(responses)
            parts = sentences(as_read(prompts))
            ids = None if reply is None or not parts else self.encoder.tokenize(reply)
            for sentence in parts:
                if (sentence, reply) not in seen:
                    seen.add((sentence, reply))
                    window = self.encoder.whole_window(sentence, ids, owner=owner)
                    found += [(SENTENCES, window)] if window is not None else []
        if len(found) > self.max_windows:
            raise InputTooLongError(
                f"{name(i, 'response' if r is not None else 'prompt')} needs {len(found):,} windows of "
                f"{self.manifest.max_length} tokens; the limit is {self.max_windows:,} (Guard.load(max_windows=...)"
                "); split the text, or raise the limit knowing each window costs one model call")
        return found

    def _verdicts(self, tagged: list[tuple[str, Window]], texts: int, cut: float, rule: Policy) -> list[Verdict]:
        """One verdict per text of ``tagged`` (owners 0 .. texts-1), each from its most unsafe window."""
        if not texts:
            return []
        return self.judge(tagged, self.window_logits([w for _, w in tagged]), texts, cut, rule)

    def window_logits(self, windows: list[Window]) -> np.ndarray:
        """The model's logits of each window, in order (what ``judge`` decides from).

        A model that fails on its input is a bundle fault, typed as one: a bundle without ``source.max_positions``
        (exported before export recorded it) cannot have its max_length checked against the model at load."""
        m = self.manifest
        try:
            return run_windows(self.backend.run, windows, m.text.pad_id, m.inputs, self.batch_size)
        except (GuardError, MemoryError):
            raise
        except Exception as e:  # each backend's own error types (ONNX Runtime's Fail, ExecuTorch's RuntimeError)
            longest = max(len(w.input_ids) for w in windows)
            raise BundleError(f"{self.artifact.path}: the model failed on windows of up to {longest} tokens; does "
                              f"max_length {m.max_length} fit its positions? ({type(e).__name__}: {e})",
                              self.path / self.artifact.path) from e

    def judge(self, tagged: list[tuple[str, Window]], logits: np.ndarray, texts: int, cut: float,
              rule: Policy) -> list[Verdict]:
        """One verdict per text from its windows' ``logits`` (owners 0 .. texts-1): the most unsafe window decides,
        under threshold ``cut`` and policy ``rule`` (guard_sdk.stream scores only new windows and calls this)."""
        m = self.manifest
        windows = [w for _, w in tagged]
        if logits.shape[1] != LABEL_OUTPUTS + len(m.categories):
            raise ManifestError(f"{self.path / MANIFEST_NAME}: lists {len(m.categories)} categories, but "
                                f"{self.artifact.path} outputs {logits.shape[1]} logits (2 labels, then one a "
                                "category); re-export the bundle", self.path / MANIFEST_NAME)
        scores = unsafe_probability(logits, m.unsafe_index)
        best, counts = most_unsafe_window(windows, scores, texts)
        deciding = deciding_windows(windows, scores, texts)
        per_text = highest_per_text(windows, category_probability(logits, [c.index for c in m.categories]), texts)
        thresholds = {c.name: c.threshold for c in m.categories}
        verdicts = []
        for i, (s, n) in enumerate(zip(best, counts)):
            categories = {c.name: float(per_text[i, j]) for j, c in enumerate(m.categories)}
            unsafe, violations = decide(float(s), cut, categories, thresholds, rule)
            verdicts.append(Verdict(
                unsafe=unsafe,
                score=float(s),
                threshold=cut,
                label=m.labels[m.unsafe_index] if unsafe else m.labels[1 - m.unsafe_index],
                windows=int(n),
                categories=categories,
                violations=violations,
                view=tagged[deciding[i]][0],
            ))
        return verdicts


def unsafe_probability(logits: np.ndarray, unsafe_index: int) -> np.ndarray:
    """Softmax over the two label logits (a model's first two outputs; any after them are its categories'), in
    float64, and the unsafe column of it."""
    z = logits[:, :LABEL_OUTPUTS].astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e[:, unsafe_index] / e.sum(axis=-1)


def category_probability(logits: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """P(category) per window and category: the sigmoid of each category's logit, in float64."""
    return 1.0 / (1.0 + np.exp(-logits[:, list(indices)].astype(np.float64)))


def highest_per_text(windows: list[Window], scores: np.ndarray, texts: int) -> np.ndarray:
    """Each text's highest score per column over its windows (a harm anywhere in a long text counts)."""
    owners = np.fromiter((w.owner for w in windows), dtype=np.int64, count=len(windows))
    best = np.zeros((texts, scores.shape[1]))
    np.maximum.at(best, owners, scores)
    return best


def windows_per_call(quantization: dict[str, object] | None, fixed_batch: int | None, batch_size: int) -> int:
    """``batch_size``, or 1 for an artifact whose activations are quantized at run time or whose graph
    has a fixed batch of 1 (the mobile formats).

    Dynamic quantization takes one activation scale over the whole input tensor, so in a batch a window's
    score would shift with its neighbours (and their padding): a verdict must not depend on what else
    was sent with it.
    """
    dynamic = str((quantization or {}).get("activations", "")).endswith("dynamic")
    return 1 if dynamic or fixed_batch == 1 else batch_size


def deciding_windows(windows: list[Window], scores: np.ndarray, texts: int) -> np.ndarray:
    """The index of each text's most unsafe window (the first of equal ones), by ``Window.owner``."""
    owners = np.fromiter((w.owner for w in windows), dtype=np.int64, count=len(windows))
    order = np.lexsort((np.arange(len(windows)), -scores, owners))  # by owner, then highest score, then first
    first = np.ones(len(order), dtype=bool)
    first[1:] = owners[order][1:] != owners[order][:-1]
    picked = np.empty(texts, dtype=np.int64)
    picked[owners[order][first]] = order[first]
    return picked


def most_unsafe_window(windows: list[Window], scores: np.ndarray, texts: int) -> tuple[np.ndarray, np.ndarray]:
    """(the highest window score of each text, how many windows each text has), by ``Window.owner``."""
    owners = np.fromiter((w.owner for w in windows), dtype=np.int64, count=len(windows))
    best = np.full(texts, -1.0)
    np.maximum.at(best, owners, scores)
    return best, np.bincount(owners, minlength=texts)


def score_windows(
    run: Callable[[dict[str, np.ndarray]], np.ndarray],
    windows: list[Window],
    pad_id: int,
    input_names: list[str],
    unsafe_index: int,
    batch_size: int,
) -> np.ndarray:
    """P(unsafe) per window through ``run`` (any backend, or PyTorch in export's parity check)."""
    return unsafe_probability(run_windows(run, windows, pad_id, input_names, batch_size), unsafe_index)


def run_windows(
    run: Callable[[dict[str, np.ndarray]], np.ndarray],
    windows: list[Window],
    pad_id: int,
    input_names: list[str],
    batch_size: int,
) -> np.ndarray:
    """What ``run`` outputs for each window (its logits), in the windows' order.

    Windows go in length-sorted batches of ``batch_size``, so padding stays small and memory is bounded
    by the batch, not by the input.
    """
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
    outputs: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = run(pad_batch([windows[i] for i in idx], pad_id, input_names))
        if outputs is None:
            outputs = np.empty((len(windows), batch.shape[1]), dtype=batch.dtype)
        outputs[idx] = batch
    return outputs if outputs is not None else np.empty((0, LABEL_OUTPUTS))


def check_bundle(path: str | Path) -> dict[str, str]:
    """What ``guard-sdk verify`` runs: every check of ``Guard.load`` on every artifact, not only on the one a load
    picks (guard.json's meaning, the tokenizer, each file's size and sha256), and each artifact that a backend here
    runs loaded and run on one text (which checks its outputs against the categories); {artifact path: outcome}.
    An artifact of a format no backend knows is refused, as a load would refuse a bundle holding only it."""
    path = Path(path)
    manifest = verify_bundle(path)
    outcomes = {}
    for artifact in manifest.artifacts:
        names = [name for name, info in BACKENDS.items() if info.format == artifact.format]
        if not names:
            raise UnknownFormatError(f"{path / artifact.path}: format {artifact.format!r}, which no backend of this "
                                     f"runtime runs ({', '.join(sorted({b.format for b in BACKENDS.values()}))})",
                                     path / artifact.path)
        try:
            guard = Guard.load(path, backend=names[0], precision=artifact.precision)
        except BackendUnavailableError as e:
            outcomes[artifact.path] = f"not run here ({e})"
            continue
        guard.classify("Hello.")  # guard.json allows one artifact of each format and precision: this one
        outcomes[artifact.path] = f"loaded by {names[0]}, scored a text"
    return outcomes
