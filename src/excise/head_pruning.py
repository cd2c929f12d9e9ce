"""One-shot duplicate-head pruning: score heads, select duplicates with a budget, intervene, evaluate.

The chain behind ``excise heads`` and the ``head-pruning`` experiment type: ``heads`` scores
(per-head outputs or attention patterns; euclidean / cosine / random), per-layer budgets and
medoids (``excise.selection_heads``), an intervention (``mask``, ``zero``, ``merge``,
``duplicate``, ``remove``; ``excise.interventions.heads``), and zero-shot multiple-choice accuracy
on local tasks (``excise.evaluation.lmeval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from excise.errors import ExciseError

INTERVENTIONS = ("mask", "zero", "merge", "duplicate", "remove")


def check_head_request(model: Any, budget: str, fraction: float, intervention: str) -> None:
    """Every refusal that needs no forward pass: adapter, fraction, budget, intervention."""
    from excise.models.adapters import get_layout, n_heads, n_kv_heads
    from excise.selection_heads import BUDGETS, check_head_fraction

    lay = get_layout(model)
    check_head_fraction(fraction)
    if budget not in BUDGETS:
        raise ExciseError(f"unknown head budget '{budget}'; choose one of {', '.join(BUDGETS)}")
    if intervention not in INTERVENTIONS:
        raise ExciseError(
            f"unknown head intervention '{intervention}'; choose one of {', '.join(INTERVENTIONS)}"
        )
    if intervention == "remove":
        if budget != "balanced":
            raise ExciseError(
                f"physical removal needs budget 'balanced' (one head count per layer in the config), got "
                f"'{budget}'; use --intervention mask or merge with that budget"
            )
        if lay.qkv is not None or lay.head_dim_key is None:
            raise ExciseError(
                f"physical removal is not available for '{model.config.model_type}' (its config derives the "
                "head size from hidden_size / heads); use --intervention merge or zero"
            )
        if n_kv_heads(model) != n_heads(model):
            raise ExciseError(
                f"physical removal is impossible with grouped-query attention ({n_heads(model)} query heads "
                f"share {n_kv_heads(model)} key/value heads); use --intervention mask, zero or merge"
            )


def load_prompts(
    data: str, tokenizer: Any, model: Any, n: int | None, batch_size: int, max_length: int | None
) -> list[Any]:
    """Batches of the first ``n`` examples of ``data`` (prompt and response), each cut to ``max_length`` tokens.

    Heads are compared on whatever text they see, so a long example is truncated, not refused.
    """
    from excise.data import Encoded, context_length, encode, iter_batches, load_examples, pad_id

    examples = load_examples(data)
    if n is not None:
        examples = examples[:n]
    limit = max_length or context_length(model)
    enc = encode(tokenizer, examples, None)
    if limit:
        enc = [Encoded(e.input_ids[:limit], min(e.n_prompt, limit)) for e in enc]
    return list(iter_batches(enc, batch_size, pad_id(tokenizer), sort_by_length=True))


def prune_heads_once(
    model: Any,
    tokenizer: Any,
    batches: Sequence[Any],
    *,
    metric: str = "cosine",
    budget: str = "balanced",
    fraction: float = 0.25,
    representation: str = "output",
    intervention: str = "mask",
    group_metric: str | None = None,
    seed: int = 0,
    use_cache: bool = True,
) -> tuple[Any, Any]:
    """Score, select and (except for ``mask``) apply the intervention in place: (scores, selection).

    For ``mask`` the model is left as it is: evaluate under ``mask_heads(model, selection)``.
    """
    from excise.interventions import heads as H
    from excise.scoring import score
    from excise.selection_heads import select_heads

    check_head_request(model, budget, fraction, intervention)
    scores = score(
        model, tokenizer, list(batches), "heads", metric=metric, representation=representation, seed=seed,
        use_cache=use_cache,
    )  # fmt: skip
    importance = (
        score(model, tokenizer, list(batches), "head-importance", use_cache=use_cache)
        if budget == "importance"
        else None
    )
    group = (
        score(
            model,
            tokenizer,
            list(batches),
            "heads",
            metric=group_metric,
            representation=representation,
            use_cache=use_cache,
        )
        if group_metric
        else None
    )
    sel = select_heads(scores, fraction, budget=budget, importance=importance, group_scores=group, seed=seed)
    if sel.count():
        {
            "mask": lambda m, s: m,
            "zero": H.zero_heads,
            "merge": H.merge_heads,
            "duplicate": H.duplicate_heads,
            "remove": H.remove_heads,
        }[intervention](model, sel)
    return scores, sel


def evaluate_pruned(
    model: Any,
    tokenizer: Any,
    selection: Any,
    intervention: str,
    tasks: Sequence[str],
    evaluator: str,
    limit: int | None,
) -> dict[str, dict[str, float]]:
    """Task accuracies of the pruned model (under the head mask for ``mask``)."""
    from contextlib import nullcontext

    from excise.evaluation.lmeval import evaluate_tasks
    from excise.interventions.heads import mask_heads

    ctx = mask_heads(model, selection) if intervention == "mask" and selection.count() else nullcontext()
    with ctx:
        return evaluate_tasks(model, tokenizer, tasks, evaluator=evaluator, limit=limit)
