"""DAPT's similarity-based augmentation: the rows of rules a guard already knows that lie nearest, by a sentence
encoder's cosine similarity, to each few-shot example of a new rule.

sentence-transformers embeds (its pooling and normalisation as the encoder's folder prescribes) and searches
(``util.semantic_search``, exact top-k by dot product of unit vectors): no retrieval code of our own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Neighbour:
    example: int  # index of the few-shot example it was found for
    row: int  # index in the pool
    similarity: float  # cosine


def row_text(prompt: str, response: str | None) -> str:
    """What is embedded of a row: the prompt, and the response under it where there is one."""
    return prompt if response is None else f"{prompt}\n{response}"


def load_encoder(name: str) -> Any:
    """A sentence-transformers model from a folder, hub id or ``package:MODULE``, on CUDA where there is one."""
    import torch
    from sentence_transformers import SentenceTransformer

    from guard_sdk.training.trainer import resolve_model

    return SentenceTransformer(resolve_model(name), device="cuda" if torch.cuda.is_available() else "cpu")


def embed(encoder: Any, dataset: Any, batch_size: int, progress: bool = True) -> np.ndarray:
    """Unit-length embeddings of a dataset's rows, one per row, float32."""
    texts = [row_text(p, r) for p, r in zip(dataset["prompt"], dataset["response"])]
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension()), dtype=np.float32)
    return encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=progress).astype(np.float32)


def nearest(queries: np.ndarray, pool: np.ndarray, k: int, min_similarity: float) -> list[list[Neighbour]]:
    """For each query, its ``k`` most similar pool rows at or above ``min_similarity``, the nearest first."""
    if k == 0 or len(pool) == 0:
        return [[] for _ in range(len(queries))]
    import torch
    from sentence_transformers.util import dot_score, semantic_search

    hits = semantic_search(torch.from_numpy(queries), torch.from_numpy(pool), top_k=min(k, len(pool)),
                           score_function=dot_score)
    return [[Neighbour(i, h["corpus_id"], float(h["score"])) for h in found if h["score"] >= min_similarity]
            for i, found in enumerate(hits)]


def neighbour_rows(examples: Any, pool: Any, found: Sequence[Sequence[Neighbour]], label: str) -> Any:
    """The pool rows found, each once (for the example it lies nearest to), as training rows.

    label ``example``: a row takes the label of that example (DAPT's reading: near a violation of the new rule
    is a violation); ``own``: it keeps the label it has under the known rules.
    """
    from guard_sdk.training import data as D

    best: dict[int, Neighbour] = {}
    for hits in found:
        for n in hits:
            if n.row not in best or n.similarity > best[n.row].similarity:
                best[n.row] = n
    rows = []
    for index in sorted(best):
        n, row = best[index], pool[index]
        value = examples[n.example]["label"] if label == "example" else row["label"]
        if value is None:
            raise D.DataError(f"pool row {index} has no label; with neighbours.label own every pool row needs one")
        rows.append(D.Row(row["prompt"], row["response"], int(value), f"neighbour:{row['source']}",
                          row["category"], row["group"]))
    return D.to_dataset(rows) if rows else None
