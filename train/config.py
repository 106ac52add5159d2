"""Training configuration: one dataclass per concern, resolved by :func:`load_config`.

Precedence (later wins): dataclass defaults (the paper's hyper-parameters, DESIGN section 2) <
the config file (TOML or YAML, e.g. ``train/configs/smollm2-135m-head.toml``) < environment
variables ``BCODER_TRAIN_<SECTION>_<FIELD>`` (e.g. ``BCODER_TRAIN_PHI_LR=1e-4``) < ``--set
section.field=value`` flags. Values from the environment and flags are read as TOML literals
(``1e-4``, ``true``, ``[1, 2]``) and as plain strings otherwise. Every run directory and checkpoint
carries the resolved config (``TrainConfig.to_dict``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib

from bcoder.core.errors import BcoderError
from bcoder.core.settings import SamplingSettings

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ENV_PREFIX = "BCODER_TRAIN_"
Precision = Literal["auto", "no", "bf16", "fp16"]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise BcoderError(f"config: {message}")


@dataclass
class ModelConfig:
    """The base LM and the Q-model built on it (see bcoder.qmodel.config.QConfig)."""

    name: str = "smollm2-135m"  # model source: preset, local dir, .gguf or HF id
    mode: Literal["head", "lmhead", "lora", "full"] = "head"  # what trains (DESIGN section 2)
    dtype: str = "auto"  # weights of the base: auto | float32 | bfloat16 | float16
    alpha: float = 1.0  # energy temperature
    gamma: float = 0.999  # discount
    r_max: float = 1.0  # bound on V and Q
    head_hidden: int = 0  # value-head width (0: linear)
    lora_r: int = 16  # LoRA rank (lora mode); the LM-head adapter's rank (lmhead mode)
    lora_alpha: int = 32  # LoRA scaling numerator (lora and lmhead modes)
    lora_dropout: float = 0.0  # LoRA dropout
    gradient_checkpointing: bool = False  # recompute activations in backward (lora/full)
    # inference backend of collect (and featurize in head mode): auto | transformers | llama.cpp
    # (auto: llama.cpp for a GGUF model on a CPU; see bcoder.backends)
    backend: str = "auto"

    def __post_init__(self) -> None:
        _check(self.mode in ("head", "lmhead", "lora", "full"), f"model.mode: {self.mode!r}")
        _check(self.backend in ("auto", "transformers", "llama.cpp"), "model.backend")
        _check(self.dtype in ("auto", "float32", "bfloat16", "float16"), "model.dtype")
        _check(self.alpha > 0 and 0 < self.gamma <= 1, "model.alpha > 0, 0 < model.gamma <= 1")
        _check(self.head_hidden >= 0 and self.lora_r > 0, "model.head_hidden, model.lora_r")


@dataclass
class DataConfig:
    """Which problems train, which are held out, and how prompts are made."""

    dataset: str = "mbpp"  # a dataset name or path (bcoder.problems.load.load_problems)
    split: str | None = "train"  # keep one split, or several ("train+validation"; "" or none: all)
    ids: list[str] = field(default_factory=list)  # keep only these problem ids (empty: all)
    limit: int = 0  # keep the first N problems after filtering (0: all)
    heldout_frac: float = 0.1  # problems held out for diagnostics, chosen by a hash of the id
    prompt_family: str = "auto"  # auto | apps | mbpp | humaneval | chat
    max_source_tokens: int = 600  # prompt length limit
    max_target_tokens: int = 512  # program length limit (generation and ground truths)

    def __post_init__(self) -> None:
        if self.split in ("", "none", "all"):
            self.split = None
        self.ids = [str(i) for i in self.ids]
        _check(0 <= self.heldout_frac < 1, "data.heldout_frac must be in [0, 1)")
        _check(self.limit >= 0, "data.limit must be >= 0")
        _check(self.max_source_tokens > 0 and self.max_target_tokens > 0, "data token limits")
        families = ("auto", "apps", "mbpp", "humaneval", "chat")
        _check(self.prompt_family in families, f"data.prompt_family must be one of {families}")


@dataclass
class CollectConfig:
    """Sampling programs from the checkpoint policy and running them in the sandbox."""

    samples_per_problem: int = 256  # m (the paper: 256)
    temperature: float = 0.6  # sampling temperature
    top_p: float = 0.95  # nucleus sampling
    batch_size: int = 8  # sequences per generate call
    shard_problems: int = 16  # problems per shard (a stopped run loses at most one shard)
    ground_truth: bool = True  # store the problems' ground-truth programs
    max_ground_truths: int = 0  # per problem (0: all)
    execute_ground_truth: bool = True  # run ground truths too (else assume they pass)
    # how ground truths are written: "unparse" prints them as ast.unparse does (4-space indents,
    # no trailing spaces or comments), so that L_ce does not teach the dataset's formatting
    # (MBPP's tabs, 1-space indents, trailing spaces); "raw" keeps the dataset's text
    ground_truth_style: Literal["unparse", "raw"] = "unparse"
    workers: int = 0  # sandbox workers (0: the executor's default)
    timeout: float = 4.0  # seconds per program

    def __post_init__(self) -> None:
        _check(self.samples_per_problem >= 0, "collect.samples_per_problem must be >= 0")
        if self.samples_per_problem:
            try:  # checked as solve's and eval's sampling settings are
                self.sampling()
            except BcoderError as err:
                raise BcoderError(f"config: collect: {err}") from None
        _check(self.batch_size > 0 and self.shard_problems > 0, "collect.batch_size, shards")
        _check(self.timeout > 0 and self.workers >= 0, "collect.timeout, workers")
        styles = ("unparse", "raw")
        _check(self.ground_truth_style in styles, f"collect.ground_truth_style: one of {styles}")

    def sampling(self) -> SamplingSettings:
        """How collect samples: m programs per problem (the run's seed and target length are
        applied by collect, which samples before any training: the base policy)."""
        return SamplingSettings(
            n=self.samples_per_problem,
            temperature=self.temperature,
            top_p=self.top_p,
            batch_size=self.batch_size,
        )


@dataclass
class FeaturizeConfig:
    """The frozen per-token quantities computed once (DESIGN: precompute once, not every step)."""

    batch_size: int = 8  # programs per forward
    hidden_dtype: Literal["float16", "float32"] = "float16"  # stored hidden states (head, lmhead)
    topk: int = 32  # checkpoint logits stored per token for the LM-head adapter (lmhead mode)
    # head / lmhead: collect keeps the features of what it samples as it samples it, and
    # featurize computes only the rest (ground truths, imports) when its backend is collect's
    in_collect: bool = True
    # at most this many sampled programs per problem (0: all), chosen by a hash of the code; the
    # rest stay out of training. Ground truths and imports are always featurized. Raising it later
    # computes only the programs it adds.
    max_samples_per_problem: int = 0

    def __post_init__(self) -> None:
        _check(self.batch_size > 0, "featurize.batch_size must be > 0")
        _check(self.max_samples_per_problem >= 0, "featurize.max_samples_per_problem must be >= 0")
        _check(self.topk > 0, "featurize.topk must be > 0")
        _check(self.hidden_dtype in ("float16", "float32"), "featurize.hidden_dtype")


@dataclass
class StageConfig:
    """Optimisation of one stage; the defaults are the phi-stage's (paper, Appendix H)."""

    steps: int = 18000  # optimizer steps
    lr: float = 1e-5  # AdamW (peak) learning rate
    schedule: Literal["constant", "linear"] = "constant"  # linear: decay to 0, no warm-up
    weight_decay: float = 0.05  # AdamW weight decay
    batch_size: int = 16  # programs per micro-batch per process
    grad_accum: int = 4  # micro-batches per optimizer step
    rho_real: float = 0.5  # fraction of each micro-batch drawn from ground-truth programs
    max_grad_norm: float = 1.0  # gradient clipping (0: off)
    weight_by_count: bool = True  # draw a deduplicated program as often as it was sampled
    log_every: int = 10  # steps between metric lines
    eval_every: int = 200  # steps between held-out evaluations (0: only at the end)
    save_every: int = 200  # steps between checkpoints
    keep_last: int = 2  # step checkpoints kept (plus best)

    def __post_init__(self) -> None:
        _check(self.steps >= 0 and self.lr > 0, "steps >= 0 and lr > 0")
        _check(self.schedule in ("constant", "linear"), f"schedule: {self.schedule!r}")
        _check(self.batch_size > 0 and self.grad_accum > 0, "batch_size and grad_accum > 0")
        _check(0 <= self.rho_real <= 1, "rho_real must be in [0, 1]")
        _check(self.weight_decay >= 0 and self.max_grad_norm >= 0, "weight_decay, max_grad_norm")
        _check(self.log_every > 0 and self.save_every > 0, "log_every and save_every > 0")
        _check(self.eval_every >= 0 and self.keep_last >= 1, "eval_every >= 0, keep_last >= 1")


@dataclass
class PhiConfig(StageConfig):
    """phi-stage: pre-train V_phi with the checkpoint's advantages frozen."""

    init_value: float | None = None  # V the head starts at (None: the data's mean reward)


@dataclass
class ThetaConfig(StageConfig):
    """theta-stage: fine-tune Q_theta with the conservative TD loss, L_adv and L_ce."""

    steps: int = 10000
    lr: float = 3e-5
    schedule: Literal["constant", "linear"] = "linear"
    grad_accum: int = 1
    beta_adv: float = 0.1  # weight of L_adv
    beta_ce: float = 0.5  # weight of L_ce
    operator: Literal["conservative", "optimality"] = "conservative"  # target action (ablation)
    # the programs L_adv and L_ce imitate: the ground truths (the paper), or those and the
    # sampled programs that passed ("passing", not in the paper)
    imitate: Literal["ground_truth", "passing"] = "ground_truth"
    skip_phi: bool = False  # ablation: start from the untrained value head

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.operator in ("conservative", "optimality"), f"operator: {self.operator!r}")
        _check(self.imitate in ("ground_truth", "passing"), f"imitate: {self.imitate!r}")
        _check(self.beta_adv >= 0 and self.beta_ce >= 0, "beta_adv, beta_ce >= 0")


@dataclass
class RunConfig:
    """Where a run lives and how it executes."""

    dir: str = "runs/default"  # the run directory (relative paths: to the working directory)
    seed: int = 0  # data order, sampling and initialisation
    precision: Precision = "auto"  # autocast on GPU: auto (bf16 if supported, else fp16) | no
    device: str = "auto"  # auto | cpu | cuda (accelerate decides under `accelerate launch`)
    tensorboard: bool = False  # also write TensorBoard events
    threads: int = 0  # torch CPU threads (0: torch's default; 1 is fastest on a busy machine)

    def __post_init__(self) -> None:
        _check(self.precision in ("auto", "no", "bf16", "fp16"), "run.precision")
        _check(self.threads >= 0, "run.threads must be >= 0")
        _check(self.device in ("auto", "cpu", "cuda"), "run.device")


@dataclass
class SelectConfig:
    """What ``train select`` checks on the held-out problems besides the ranker."""

    # lmhead mode: also sample the trained policy on the held-out problems (as collect sampled
    # the checkpoint's) and keep sampling from it only if it passes at least as often
    policy: bool = True
    # also choose the ranker for problems without tests: sample the held-out problems under the
    # no-tests protocol (no assert shown), let the model write tests, and keep the agreement
    # ranker with the best pass@1 (the checkpoint's "ranker_without_tests")
    without_tests: bool = True


@dataclass
class TrainConfig:
    """The whole recipe: ``[model] [data] [collect] [featurize] [phi] [theta] [select] [run]``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    featurize: FeaturizeConfig = field(default_factory=FeaturizeConfig)
    phi: PhiConfig = field(default_factory=PhiConfig)
    theta: ThetaConfig = field(default_factory=ThetaConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        sections = {}
        hints = typing.get_type_hints(cls)
        for key, value in d.items():
            if key not in hints:
                raise BcoderError(f"config: unknown section [{key}] (expected {', '.join(hints)})")
            if not isinstance(value, dict):
                raise BcoderError(f"config: [{key}] must be a table")
            sections[key] = _build(hints[key], value, key)
        return cls(**sections)


SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(hints)
            raise BcoderError(f"config: unknown key {section}.{key} (known: {known})")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a value against a field's type, converting int -> float where a float is wanted."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise BcoderError(f"config: {where} must be one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise BcoderError(f"config: {where} must be a list")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, bool, str) and not isinstance(value, hint):
        raise BcoderError(f"config: {where} must be {hint.__name__}, not {value!r}")
    if hint is int and isinstance(value, bool):
        raise BcoderError(f"config: {where} must be int, not {value!r}")
    return value


def parse_value(text: str) -> Any:
    """A TOML literal (``1e-4``, ``true``, ``"x"``, ``[1, 2]``), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's contents; a bare name is looked up in the packaged configs."""
    p = Path(path)
    if not p.exists() and (CONFIG_DIR / f"{p.name}.toml").is_file():
        p = CONFIG_DIR / f"{p.name}.toml"
    if not p.is_file():
        names = ", ".join(sorted(c.stem for c in CONFIG_DIR.glob("*.toml")))
        raise BcoderError(f"{path}: no such config file (packaged configs: {names})")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        else:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, ValueError) as err:
        raise BcoderError(f"{p}: not a valid config ({err})") from None
    except Exception as err:  # yaml.YAMLError without importing yaml up front
        raise BcoderError(f"{p}: not a valid config ({err})") from None
    if not isinstance(data, dict):
        raise BcoderError(f"{p}: a config must be a table of sections")
    return data


def _set(data: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    section, _, key = dotted.partition(".")
    if not key or section not in SECTIONS:
        raise BcoderError(
            f"{where}: expected SECTION.KEY with SECTION one of {', '.join(SECTIONS)}"
        )
    data.setdefault(section, {})[key] = value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> TrainConfig:
    """Resolve defaults < file < environment (``BCODER_TRAIN_SECTION_FIELD``) < ``overrides``
    (``["phi.lr=1e-4", ...]``) into a validated :class:`TrainConfig`."""
    data: dict[str, Any] = {s: dict(v) for s, v in (read_config_file(path) if path else {}).items()}
    env = os.environ if env is None else env
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        _set(data, f"{section}.{key}", parse_value(text), f"environment variable {name}")
    for item in overrides or []:
        dotted, sep, text = item.partition("=")
        if not sep:
            raise BcoderError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        _set(data, dotted.strip(), parse_value(text.strip()), f"--set {item!r}")
    return TrainConfig.from_dict(data)
