"""Prompt tuning's virtual tokens made part of a plain checkpoint, so that it exports like any other.

peft puts the learned vectors in front of the word embeddings at run time and offers no merge for prompt
learning (``merge_and_unload`` is LoRA's). Our own few lines therefore: each vector becomes a row of the word
embedding table under a new special token, and the tokenizer's post-processor puts those tokens first in every
window, before [CLS], with token type 0, as peft does. Positions, types and masks then match peft's forward
exactly, the exported graph carries the vectors in its embedding table, and the runtime (and the Android
demo) read the new template from tokenizer.json like any other.
"""

from __future__ import annotations

from typing import Any

from guard_sdk.tokenization import Segment, special_template

TOKEN = "[GUARD_PROMPT_{}]"


def _template_spec(tokenizer: Any, prefix: list[str], segments: tuple[Segment, ...]) -> str:
    pieces = [f"{t}:0" for t in prefix]
    for seg in segments:
        if seg.sequence is None:
            pieces += [f"{tokenizer.id_to_token(i)}:{seg.type_id}" for i in seg.ids]
        else:
            pieces.append(f"${'AB'[seg.sequence]}:{seg.type_id}")
    return " ".join(pieces)


def unwrap_trained_copies(model: Any) -> Any:
    """``model`` with each of peft's modules_to_save wrappers (the trained head) replaced by its trained copy."""
    from peft.utils.other import AuxiliaryTrainingWrapper

    for name, module in list(model.named_modules()):
        if isinstance(module, AuxiliaryTrainingWrapper):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, module.unload_and_optionally_merge_module(False, False, None))
    return model


def bake_prompt(peft_model: Any, tokenizer: Any) -> Any:
    """The plain model of a trained prompt-tuning ``peft_model``; ``tokenizer`` gains the virtual tokens and a
    post-processor that puts them first. Its outputs equal the peft model's on the same windows."""
    import torch
    from tokenizers.processors import TemplateProcessing

    vectors = peft_model.get_prompt_embedding_to_save(peft_model.active_adapter).detach()
    model = unwrap_trained_copies(peft_model.get_base_model())
    backend = tokenizer.backend_tokenizer
    single, pair = special_template(backend, pair=False), special_template(backend, pair=True)
    names = [TOKEN.format(i) for i in range(len(vectors))]
    tokenizer.add_special_tokens({"additional_special_tokens": names}, replace_additional_special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids(names)
    if max(ids) >= model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(max(ids) + 1, mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[ids] = vectors.to(model.get_input_embeddings().weight.dtype)
    specials = {t: i for t, i in zip(names, ids)}
    for seg in (*single, *pair):
        specials.update({backend.id_to_token(i): i for i in seg.ids})
    backend.post_processor = TemplateProcessing(
        single=_template_spec(backend, names, single), pair=_template_spec(backend, names, pair),
        special_tokens=list(specials.items()))
    return model
