"""Random-weight checkpoints of real model shapes, for exporting and benchmarking a model this machine cannot
download (speed and size do not depend on the weights).

Each shape is the published config of the hub model, written out here because the hub is not reachable
offline. The tokenizer is a small Unigram one built from the parity texts: it emits only a few hundred of
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
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def small_tokenizer(kind: str, texts: list[str], max_length: int, vocab_size: int = 400) -> Any:
    """A WordPiece (BERT's layout) or Unigram-with-Metaspace (DeBERTa-v3's) fast tokenizer over ``texts``.

    Written here rather than trained with ``tokenizers.trainers``: those break ties between equally frequent
    pieces in hash-map order, which changes from process to process, so ids, and a random model's scores,
    would change run to run. This vocabulary is the characters plus the most frequent words, sorted.
    """
    import math
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    wordpiece = kind == "wordpiece"
    normalizer = normalizers.BertNormalizer(lowercase=True) if wordpiece else normalizers.NFKC()
    pre = (pre_tokenizers.BertPreTokenizer() if wordpiece
           else pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always"))
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted({c for w in counts for c in w})
    base = SPECIALS + chars + (["##" + c for c in chars] if wordpiece else [])
    ranked = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if w not in base]
    pieces = base + ranked[: max(0, vocab_size - len(base))]
    if wordpiece:
        model = models.WordPiece(vocab={p: i for i, p in enumerate(pieces)}, unk_token="[UNK]")
    else:  # log frequencies; single characters score lowest, so a known word is one piece
        total = sum(counts.values())
        scores = [0.0] * len(SPECIALS) + [math.log(0.1 / total)] * len(chars)
        scores += [math.log(counts[w] / total) for w in pieces[len(base):]]
        model = models.Unigram(list(zip(pieces, scores)), unk_id=SPECIALS.index("[UNK]"))
    tok = Tokenizer(model)
    tok.normalizer, tok.pre_tokenizer = normalizer, pre
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
    from guard_sdk.export.parity import PARITY_TEXTS

    if shape not in SHAPES:
        raise ExportError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    fields = dict(SHAPES[shape])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields, num_labels=2, pad_token_id=0,
                                  id2label={0: "safe", 1: "unsafe"}, label2id={"safe": 0, "unsafe": 1})
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    out = Path(out)
    model.save_pretrained(out)
    texts = [t for pair in PARITY_TEXTS for t in pair if t]
    small_tokenizer("unigram", texts, config.max_position_embeddings, 500).save_pretrained(out)
    return out
