"""Random-weight checkpoints of real model shapes, for exporting and benchmarking a model this machine cannot
download (speed and size do not depend on the weights).

Each shape is the published config of the hub model, written out here because the hub is not reachable
offline. The tokenizer is a small Unigram one trained on the parity texts: it emits only a few hundred of
the vocabulary's ids, but the embedding table keeps the real model's rows, which is what size depends on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The DeBERTa-v3 attention layout: relative positions in 256 log buckets, no absolute positions, no token types.
_DEBERTA_V3 = dict(
    model_type="deberta-v2", vocab_size=128100, hidden_act="gelu", max_position_embeddings=512, type_vocab_size=0,
    relative_attention=True, position_buckets=256, max_relative_positions=-1, norm_rel_ebd="layer_norm",
    share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, layer_norm_eps=1e-7,
    pooler_dropout=0, pooler_hidden_act="gelu",
)


def _deberta_v3(hidden: int, layers: int, heads: int) -> dict[str, Any]:
    return dict(_DEBERTA_V3, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=4 * hidden, pooler_hidden_size=hidden)


SHAPES: dict[str, dict[str, Any]] = {
    "deberta-v3-large": _deberta_v3(1024, 24, 16),  # microsoft/deberta-v3-large: the HarmAug student, 435M
    "deberta-v3-base": _deberta_v3(768, 12, 12),  # microsoft/deberta-v3-base, 184M
}
_SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


def _tokenizer(max_length: int) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from guard_sdk.export.parity import PARITY_TEXTS

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=500, special_tokens=_SPECIALS, unk_token="[UNK]")
    tok.train_from_iterator([t for pair in PARITY_TEXTS for t in pair if t], trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_length)


def write_random_checkpoint(shape: str, out: str | Path, seed: int = 0) -> Path:
    """A sequence-classification checkpoint of ``shape`` with random weights, saved to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from guard_sdk.errors import ExportError

    if shape not in SHAPES:
        raise ExportError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    fields = dict(SHAPES[shape])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields, num_labels=2, pad_token_id=0,
                                  id2label={0: "safe", 1: "unsafe"}, label2id={"safe": 0, "unsafe": 1})
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    out = Path(out)
    model.save_pretrained(out)
    _tokenizer(config.max_position_embeddings).save_pretrained(out)
    return out
