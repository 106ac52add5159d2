"""Solve a problem: sample candidates from the theta policy, score them, merge, test and rank by R~.

    engine = Engine.load("smollm2-135m")            # a loaded model, reused across solves
    result = solve(problem, engine, SolveSettings(n=8))
    result.candidates[0]                            # the best by R~, with per-token values

The pipeline (DESIGN section 1): prompt -> sampling (+ in-loop scores in head mode) -> scoring
(one batched forward otherwise) -> merge identical programs -> execution when there are tests ->
ranking by R~ -> the results store. Progress reaches the caller as
:class:`~bcoder.core.types.Progress` and :class:`~bcoder.core.types.CandidateReady` events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcoder.core.cancel import Cancelled
from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.types import Candidate, CandidateReady, CandidateTested, Progress, SolveResult
from bcoder.models.sources import DEFAULT_MODEL
from bcoder.ranking.rankers import checkpoint_ranker, rank, run_tests

if TYPE_CHECKING:  # torch is imported when a model is loaded, so that this module imports fast
    from bcoder.backends import Backend
    from bcoder.decode.sampling import DecodeOptions, FenceStop, Generation
    from bcoder.qmodel.model import BCoderModel
    from bcoder.qmodel.scores import StepScores

__all__ = ["Cancelled", "Engine", "SolveSettings", "score_codes", "solve"]

EventFn = Callable[[Any], None]
# End-of-turn tokens of common chat templates: an instruct model's answer ends at one of them.
_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


@dataclass
class SolveSettings:
    """How to solve: which model, how to sample, whether to test. Validated on construction."""

    model: str | None = None  # preset, HF id, directory or .gguf (None: see model_for)
    # B-Coder checkpoint dir (value heads / adapter); None: the one shipped for the model, if
    # any (bcoder.qmodel.shipped); "none": the untrained initialisation
    checkpoint: str | None = None
    n: int = 8  # candidates to sample
    temperature: float = 0.6  # sampling temperature (0 = greedy; the paper ranks at 0.6)
    top_p: float = 0.95  # nucleus sampling mass
    max_new_tokens: int | None = None  # completion length limit (None: the checkpoint's, 512)
    seed: int | None = 0  # sampling seed (None: a fresh random seed)
    batch_size: int = 8  # candidates decoded at once
    run_tests: bool = True  # run the problem's tests in the sandbox, when it has tests
    filter_examples: bool = False  # drop candidates that fail the example tests before ranking
    dtype: str | None = None  # torch dtype name (None: what the hardware runs fast)
    device: str | None = None  # torch device (None: cuda when available, else cpu)
    backend: str = "auto"  # auto | transformers | llama.cpp (see bcoder.backends)
    timeout: float = 4.0  # seconds per test in the sandbox
    # sample from the "trained" policy l_theta or the "checkpoint" LM's own (lmhead / head
    # mode); None: the one the checkpoint's validation chose (bcoder.qmodel.config.checkpoint_policy)
    policy: str | None = None

    def __post_init__(self) -> None:
        from bcoder.qmodel.shipped import resolve_checkpoint

        self.checkpoint = resolve_checkpoint(self.model, self.checkpoint)
        if self.model is None:
            self.model = model_for(None, self.checkpoint)
        if self.max_new_tokens is None:  # the target length the checkpoint was trained with
            from bcoder.qmodel.config import checkpoint_prompt_settings

            self.max_new_tokens = checkpoint_prompt_settings(self.checkpoint).max_target_tokens
        if not isinstance(self.model, str) or not self.model.strip():
            raise BcoderError("model must be a non-empty model name or path")
        if self.n < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise BcoderError("n, batch_size and max_new_tokens must be at least 1")
        if not 0 <= self.temperature <= 10:
            raise BcoderError(f"temperature must be in [0, 10], not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise BcoderError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.seed is not None and self.seed < 0:
            raise BcoderError(f"seed must be >= 0, not {self.seed}")
        if self.timeout <= 0:
            raise BcoderError(f"timeout must be positive, not {self.timeout}")
        from bcoder.qmodel.config import POLICIES

        if self.policy is not None and self.policy not in POLICIES:
            raise BcoderError(f"policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_for(model: str | None, checkpoint: str | None) -> str:
    """The model to load: ``model`` when given, else the base ``checkpoint`` was trained on (so
    that ``--checkpoint`` alone is enough), else the default model."""
    from bcoder.qmodel.shipped import NO_CHECKPOINT

    if model:
        return model
    if checkpoint and checkpoint.strip().lower() not in NO_CHECKPOINT:
        from bcoder.qmodel.config import read_checkpoint_config

        base = read_checkpoint_config(checkpoint)["config"].get("base_model")
        if base:
            return str(base)
    return DEFAULT_MODEL


class Engine:
    """A loaded model (tokenizer + backend), reused across solves; safe to share between threads.

    ``model`` is a :class:`~bcoder.backends.Backend`, or a BCoderModel (served by transformers).
    """

    def __init__(
        self, tokenizer: Any, model: Backend | BCoderModel, info: dict[str, Any], heads: str
    ):
        from bcoder.backends.hf import as_backend
        from bcoder.qmodel.config import checkpoint_prompt_settings

        self.tokenizer = tokenizer
        self.backend = as_backend(model)
        self.info = info
        self.heads = heads  # "init" or the checkpoint path
        # the prompt family and lengths the checkpoint was trained with (defaults without one)
        self.prompting = checkpoint_prompt_settings(None if heads == "init" else heads)
        self.lock = threading.Lock()  # one solve at a time on the model
        self._fence: FenceStop | None = None

    @property
    def qmodel(self) -> BCoderModel:
        """The Q-model of the transformers backend (training and lora/full checkpoints need it)."""
        qmodel = getattr(self.backend, "qmodel", None)
        if qmodel is None:
            raise BcoderError(f"the {self.backend.name} backend has no transformers Q-model")
        return qmodel

    @classmethod
    def load(
        cls,
        model: str,
        checkpoint: str | None = None,
        *,
        dtype: str | None = None,
        device: str | None = None,
        backend: str | None = "auto",
        threads: int = 0,
        on_event: EventFn | None = None,
        allow_download: bool = True,
    ) -> Engine:
        """Load ``model`` (fetching it if needed) and the B-Coder heads of ``checkpoint`` on
        ``backend`` (auto: llama.cpp for a GGUF model on a CPU, see bcoder.backends)."""
        from bcoder.backends import choose_backend
        from bcoder.models.sources import resolve_source

        source = resolve_source(model)  # fail fast (before importing torch) on no model
        if checkpoint and not (Path(checkpoint) / "bcoder_config.json").is_file():
            raise BcoderError(f"{checkpoint}: not a bcoder checkpoint (no bcoder_config.json)")
        name = choose_backend(backend, "gguf" if source.is_gguf else source.kind)
        if name == "llama.cpp":
            if device and not device.startswith("cpu"):
                raise BcoderError("the llama.cpp backend runs on the CPU: drop --device")
            from bcoder.backends.gguf import load_llama

            tokenizer, llama, info = load_llama(
                model, checkpoint, threads=threads, on_event=on_event, allow_download=allow_download
            )
            return cls(tokenizer, llama, info, checkpoint or "init")
        from bcoder.models.loading import load_model_and_tokenizer
        from bcoder.qmodel.config import QConfig
        from bcoder.qmodel.model import BCoderModel

        t0 = time.perf_counter()
        base, tokenizer, info = load_model_and_tokenizer(
            model, dtype=dtype, device=device, on_progress=on_event, allow_download=allow_download
        )
        if checkpoint:
            qmodel = BCoderModel.from_checkpoint(checkpoint, base)
        else:
            qmodel = BCoderModel(base, QConfig(mode="head", base_model=model))
        qmodel.to(info.get("device") or next(base.parameters()).device)  # heads to the device
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        info = {**info, "backend": "transformers"}
        info["engine_load_seconds"] = time.perf_counter() - t0  # download included
        from bcoder.backends.hf import TransformersBackend

        return cls(tokenizer, TransformersBackend(qmodel, info), info, checkpoint or "init")

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def prompt(self, problem: Problem) -> tuple[str, str, list[int]]:
        """The prompt family, prompt text and prompt token ids for ``problem``, made as the
        checkpoint's training prompts were (its family, else the default; its source length)."""
        from bcoder.problems.prompts import build_prompt, prompt_family

        tokenizer = self.tokenizer
        if self.prompting.family != "auto":
            family = self.prompting.family
        elif self.backend.is_seq2seq:  # an encoder-decoder reads the plain problem, no chat turns
            family = prompt_family(problem, None)
        else:
            family = prompt_family(problem, tokenizer)
        text = build_prompt(problem, family, tokenizer, self.prompting.max_source_tokens)
        ids = tokenizer(text, add_special_tokens=family != "chat").input_ids
        return family, text, list(ids)

    def eos_ids(self) -> tuple[int, ...]:
        """Token ids that end a completion: the tokenizer's and generation config's EOS, and
        the chat template's end-of-turn token."""
        ids: set[int] = set(self.backend.generation_eos_ids())
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in _TURN_ENDS if t in vocab)
        return tuple(sorted(ids))

    def fence(self) -> FenceStop:
        from bcoder.decode.sampling import FenceStop

        if self._fence is None:
            self._fence = FenceStop(self.tokenizer, self.backend.vocab_size, self.backend.device)
        return self._fence

    def policy(self, requested: str | None = None) -> str:
        """What to sample from: ``requested``, else the checkpoint's choice. The checkpoint
        policy needs its logits in the decode loop, which a frozen backbone (head, lmhead) has."""
        from bcoder.qmodel.config import checkpoint_policy

        policy = requested or checkpoint_policy(self.heads)
        if policy == "checkpoint" and not self.backend.scores_in_loop:
            raise BcoderError(
                f"{self.heads}: sampling the checkpoint policy needs head or lmhead mode "
                f"(this is {self.backend.config.mode} mode); use --policy trained"
            )
        return policy

    def options(self, settings: SolveSettings, family: str) -> DecodeOptions:
        from bcoder.decode.sampling import DecodeOptions

        return DecodeOptions(
            policy=self.policy(settings.policy),
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_new_tokens=settings.max_new_tokens,
            eos_ids=self.eos_ids(),
            fence=self.fence() if family == "chat" else None,  # chat prompts ask for a block
            score=self.backend.scores_in_loop,
        )


def code_key(code: str) -> str:
    """Identity of a program for merging: trailing spaces and blank edges do not count."""
    return "\n".join(line.rstrip() for line in code.strip("\n").split("\n"))


def solve(
    problem: Problem,
    engine: Engine,
    settings: SolveSettings,
    *,
    on_event: EventFn | None = None,
    cancel: threading.Event | None = None,
    executor: Any = None,
    store: Any = None,
) -> SolveResult:
    """Sample ``settings.n`` programs for ``problem``, score, merge, test and rank them by R~.

    Candidates stream: each is announced (:class:`CandidateReady`) as soon as it is scored, and
    its tests run in the sandbox while sampling goes on (:class:`CandidateTested` when done).
    """
    from bcoder.decode.sampling import sample
    from bcoder.problems.extract import extract_code

    emit = on_event or (lambda _e: None)
    ranker = checkpoint_ranker(engine.heads)  # the checkpoint's choice; a bad name fails now
    timings = {"load": float(engine.info.get("engine_load_seconds") or 0.0)}
    with engine.lock:
        family, _, prompt_ids = engine.prompt(problem)
        options = engine.options(settings, family)
        gamma = engine.backend.config.gamma
        n, limit = settings.n, settings.max_new_tokens
        t0 = time.perf_counter()
        emit(Progress("generate", 0, n * limit, f"0/{n} candidates"))
        state = {"done": 0, "tokens": 0, "ended": 0}  # rows finished, tokens, rows ended this step

        def on_step(step: int, active: int) -> None:
            # Progress counts tokens: those sampled, out of those plus what the rows still running
            # (and the rows not started) may yet take; rows that end early shrink the total.
            state["tokens"] += active + state["ended"]
            state["ended"] = 0
            waiting = n - state["done"] - active
            total = state["tokens"] + active * (limit - step) + waiting * limit
            emit(Progress("generate", state["tokens"], total, f"{state['done']}/{n} candidates"))

        merged: dict[str, Candidate] = {}  # code key -> candidate, in order of arrival
        unscored: dict[str, tuple[Generation, str, int]] = {}  # lora / full: scored after
        with StreamTester(problem, settings, executor, emit, cancel) as tester:

            def ready(key: str) -> None:  # test it while sampling goes on, and show it
                shown = tester.submit(merged[key], len(merged) - 1)
                emit(CandidateReady(merged[key], len(merged) - 1))
                shown.set()

            for gen in sample(
                engine.backend,
                prompt_ids,
                n,
                options,
                engine.pad_id,
                batch_size=settings.batch_size,
                seed=settings.seed,
                on_step=on_step,
                cancel=cancel,
            ):
                state["done"] += 1
                state["ended"] += 1
                code = extract_code(_text(engine, gen), problem, family)
                key = code_key(code)
                if key in merged:  # identical programs are merged and scored once
                    merged[key].count += 1
                elif key in unscored:
                    g, c, count = unscored[key]
                    unscored[key] = (g, c, count + 1)
                elif gen.scores is not None:  # head mode: the decode loop already scored it
                    merged[key] = _candidate(engine, gen, gen.scores, gamma, code)
                    ready(key)
                else:
                    unscored[key] = (gen, code, 1)
            timings["generate"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            if unscored:
                emit(Progress("score", 0, len(unscored)))
                gens = [g for g, _, _ in unscored.values()]
                scores = engine.backend.score(
                    [g.prompt_ids for g in gens],
                    [g.action_ids for g in gens],
                    engine.pad_id,
                    batch_size=settings.batch_size,
                )
                for (key, (gen, code, count)), sc in zip(unscored.items(), scores, strict=True):
                    merged[key] = _candidate(engine, gen, sc, gamma, code)
                    merged[key].count = count
                    ready(key)
                emit(Progress("score", len(unscored), len(unscored)))
            timings["score"] = time.perf_counter() - t1
            candidates = tester.finish(list(merged.values()))
        if tester.active:
            timings["execute"] = tester.waited  # test time not hidden behind sampling
    candidates = rank(candidates, ranker)
    result_settings = {  # what actually ran: the engine's model, heads, dtype and device
        **settings.to_dict(),
        "model": engine.info.get("name", settings.model),
        "checkpoint": None if engine.heads == "init" else engine.heads,
        "ranker": ranker,
        "policy": options.policy,
        "dtype": engine.info.get("dtype", settings.dtype),
        "backend": engine.backend.name,
        "device": engine.info.get("device", settings.device),
        "prompt_family": family,
        "model_sha256": engine.info.get("sha256"),
    }
    result = SolveResult(
        problem=problem.to_dict(),
        settings=result_settings,
        candidates=candidates,
        heads=engine.heads,
        timings=timings,
    )
    if store is not None:
        result.run_id = store.save(result)
    return result


class StreamTester:
    """Runs each candidate's tests in the sandbox as soon as it is ready, on one background thread,
    while the model samples the next ones (the sandbox runs in its own processes).

    Does nothing when there is nothing to run (no tests, or ``run_tests`` off and no filtering).
    ``finish`` waits for the last runs and applies ``filter_examples``.
    """

    def __init__(
        self, problem: Problem, settings: SolveSettings, executor: Any, emit: EventFn, cancel: Any
    ):
        self.problem, self.settings, self.emit, self.cancel = problem, settings, emit, cancel
        wanted = settings.run_tests or settings.filter_examples
        self.active = wanted and (
            (settings.run_tests and problem.tests is not None) or problem.example_tests is not None
        )
        self.executor = executor
        self.futures: list[Any] = []
        self.done = 0
        self.waited = 0.0  # seconds finish() waited for tests after sampling had ended
        self._stack = contextlib.ExitStack()
        self._pool: Any = None

    def __enter__(self) -> StreamTester:
        if self.active:
            from concurrent.futures import ThreadPoolExecutor

            if self.executor is None:
                from bcoder.execution import Executor

                self.executor = self._stack.enter_context(Executor(timeout=self.settings.timeout))
            self._pool = self._stack.enter_context(ThreadPoolExecutor(1, "bcoder-tests"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None and exc[0] is not None:
            for f in self.futures:
                f.cancel()
        self._stack.close()

    def submit(self, candidate: Candidate, index: int) -> threading.Event:
        """Start testing ``candidate``; set the returned event once its CandidateReady is out
        (its CandidateTested waits for that, so consumers see them in that order)."""
        shown = threading.Event()
        if self._pool is not None:
            self.futures.append(self._pool.submit(self._test, candidate, index, shown))
        return shown

    def _test(self, candidate: Candidate, index: int, shown: threading.Event) -> None:
        from dataclasses import replace

        one = replace(self.settings, filter_examples=False)  # filtering waits for finish()
        run_tests(self.problem, [candidate], one, self.executor, lambda _e: None, self.cancel)
        shown.wait()
        self.done += 1
        self.emit(Progress("execute", self.done, len(self.futures), "running tests"))
        self.emit(CandidateTested(candidate, index))

    def finish(self, candidates: list[Candidate]) -> list[Candidate]:
        t0 = time.perf_counter()
        for f in self.futures:
            f.result()  # re-raises a failed run (Cancelled included)
        self.waited = time.perf_counter() - t0
        if self.active and self.settings.filter_examples:
            candidates = [c for c in candidates if c.passed_examples is not False]
        return candidates


def _text(engine: Engine, gen: Generation) -> str:
    return engine.tokenizer.decode(gen.action_ids, skip_special_tokens=True)


def _candidate(
    engine: Engine, gen: Generation, scores: StepScores, gamma: float, code: str
) -> Candidate:
    from bcoder.decode.scoring import make_candidate

    return make_candidate(
        engine.tokenizer, gen.action_ids, scores, gamma, code=code, finish_reason=gen.finish_reason
    )


def completion_for(code: str, family: str, prompt: str) -> str:
    """The completion a model would have written for ``code`` under a ``family`` prompt."""
    if family == "chat":
        return f"```python\n{code.strip(chr(10))}\n```"
    if family == "humaneval" and code.startswith(prompt.rstrip("\n")):
        return code[len(prompt.rstrip("\n")) :].lstrip("\n")  # the body that continues the stub
    return code


def score_codes(
    problem: Problem, engine: Engine, codes: list[str], *, batch_size: int = 8
) -> list[Candidate]:
    """Score programs written elsewhere (other models, people) as if the model had written them.

    Each program is re-tokenised as the completion of ``problem``'s prompt: inside a fenced block
    for chat prompts (ending at the closing fence, as sampling does), else followed by EOS.
    Returns one Candidate per code, in the order given (not ranked, not merged).
    """
    from bcoder.decode.scoring import make_candidate
    from bcoder.problems.extract import with_prompt_definitions

    with engine.lock:
        family, prompt, prompt_ids = engine.prompt(problem)
        tok = engine.tokenizer
        eos = [] if family == "chat" else [tok.eos_token_id]
        actions = [
            tok(completion_for(c, family, prompt), add_special_tokens=False).input_ids + eos
            for c in codes
        ]
        actions = [a or [tok.eos_token_id] for a in actions]
        scores = engine.backend.score(
            [prompt_ids] * len(codes), actions, engine.pad_id, batch_size=batch_size
        )
        gamma = engine.backend.config.gamma
        reason = "code_block_end" if family == "chat" else "eos"
        return [
            make_candidate(
                tok, a, s, gamma, code=with_prompt_definitions(c, problem), finish_reason=reason
            )
            for c, a, s in zip(codes, actions, scores, strict=True)
        ]
