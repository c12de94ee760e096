"""Text side of MTTR (spec §2): any Hugging Face encoder through `AutoModel`, and the tokenizer helper.

`from_pretrained` is called only here, and only with a local folder or a hub name the user chose, through
the offline-first lookup of `hub_files` (cache first, no retry loop); the tests build encoders from configs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from rvos_cli.core.model.hub_files import load_offline_first
from rvos_cli.errors import RvosError


def normalize_sentence(text: str) -> str:
    """Lower-case and collapse whitespace, as every MTTR dataset does before tokenising."""
    return " ".join(text.lower().split())


def _load_error(name: str, err: Exception) -> RvosError:
    hint = (
        "pass a local folder holding the encoder (config.json, weights, tokenizer files) with --text-encoder"
        if not Path(name).exists()
        else "the folder must hold a transformers config.json, weights and tokenizer files"
    )
    return RvosError(f"text encoder {name!r} could not be loaded ({type(err).__name__}): {hint}")


def build_text_encoder(name: str, pretrained: bool = True) -> nn.Module:
    """Build a Hugging Face encoder `name` (hub name or folder) without its pooler.

    With `pretrained=False` only the config is read and the weights are random (they come from an MTTR
    checkpoint afterwards). Returns a module whose output has `last_hidden_state [B,S,C]`.
    """
    from transformers import AutoConfig, AutoModel

    try:
        if pretrained:
            model = load_offline_first(AutoModel.from_pretrained, name, weights=True)
        else:
            model = AutoModel.from_config(load_offline_first(AutoConfig.from_pretrained, name, weights=False))
    except (OSError, ValueError) as err:
        raise _load_error(name, err) from None
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # MTTR uses the token states only; the official weights have no pooler.
    return model


def roberta_base_config() -> object:
    """A `RobertaConfig` with roberta-base's shapes as the official MTTR checkpoints hold them (spec §13).

    50,265 tokens, 514 positions, one token type, LayerNorm eps 1e-5 (a default `RobertaConfig()` differs and
    would not load those weights). Lets a model be built offline; the weights come from the checkpoint.
    """
    from transformers import RobertaConfig

    return RobertaConfig(
        vocab_size=50265,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def text_hidden_size(text_encoder: nn.Module) -> int:
    """Width C of the encoder's token states."""
    return int(text_encoder.config.hidden_size)


class Tokenizer:
    """Turns raw sentences into `input_ids`/`attention_mask` `[B,S]` as MTTR does.

    Sentences are normalised (lower-case, whitespace collapsed), special tokens added, padded to the
    longest. A sentence longer than the encoder accepts is truncated with a warning instead of crashing.
    """

    def __init__(self, name: str) -> None:
        from transformers import AutoTokenizer

        try:
            self.tokenizer = load_offline_first(AutoTokenizer.from_pretrained, name, weights=False)
        except (OSError, ValueError) as err:
            raise _load_error(name, err) from None

    @classmethod
    def from_tokenizer(cls, tokenizer: object) -> Tokenizer:
        """Wrap an already built `transformers` tokenizer (tests build theirs offline)."""
        instance = cls.__new__(cls)
        instance.tokenizer = tokenizer
        return instance

    @property
    def max_length(self) -> int:
        """Longest accepted token sequence (including special tokens)."""
        limit = getattr(self.tokenizer, "model_max_length", 512)
        return limit if isinstance(limit, int) and limit < 100_000 else 512

    def __call__(self, sentences: list[str]) -> dict[str, Tensor]:
        """Tokenise `sentences` (B strings) → {'input_ids': `[B,S]` long, 'attention_mask': `[B,S]` long}."""
        cleaned = [normalize_sentence(s) for s in sentences]
        for original, text in zip(sentences, cleaned, strict=True):
            if not text:
                raise RvosError(f"empty sentence {original!r}: give the words that describe the object")
        lengths = [len(ids) for ids in self.tokenizer(cleaned, add_special_tokens=True)["input_ids"]]
        if max(lengths) > self.max_length:
            warnings.warn(
                f"a sentence has {max(lengths)} tokens, more than the text encoder accepts "
                f"({self.max_length}); it is truncated",
                stacklevel=2,
            )
        encoded = self.tokenizer(
            cleaned, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def encode_text(text_encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor, frozen: bool) -> Tensor:
    """Token states `[B,S,C]` of the encoder; a frozen encoder runs under `torch.no_grad()`.

    `no_grad` rather than `inference_mode`: the latter's tensors cannot enter autograd later, which
    breaks fp32 training in the reference.
    """
    if frozen:
        with torch.no_grad():
            return text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
