"""Evaluation: attack success rate, refusal / coherence judges, benign accuracy, perplexity, zero-shot tasks.

Names load on first use (``excise.utils.lazy_exports``), so importing a light submodule such as
``excise.evaluation.config`` does not load torch and transformers.
"""

from __future__ import annotations

from excise.utils import lazy_exports

_EXPORTS = {
    "ASRResult": ".asr",
    "any_of_n": ".asr",
    "attack_success_rate": ".asr",
    "load_suffixes": ".asr",
    "EvalConfig": ".config",
    "EndpointJudge": ".endpoint",
    "JudgeUnavailable": ".endpoint",
    "generate": ".generation",
    "left_pad": ".generation",
    "REFUSAL_PHRASES": ".judges",
    "CoherenceGate": ".judges",
    "Judge": ".judges",
    "KeywordJudge": ".judges",
    "ReferencePerplexity": ".judges",
    "Verdict": ".judges",
    "is_refusal": ".judges",
    "judge_all": ".judges",
    "KLReference": ".kl",
    "evaluate_lmeval": ".lmeval",
    "evaluate_mc": ".lmeval",
    "evaluate_tasks": ".lmeval",
    "mc_accuracy": ".lmeval",
    "perplexity": ".likelihood",
    "token_nll": ".likelihood",
    "SemanticJudge": ".semantic",
    "default_judge": ".semantic",
    "build_kl_reference": ".suite",
    "evaluate_safety": ".suite",
    "AccuracyResult": ".utility",
    "benign_accuracy": ".utility",
    "is_correct": ".utility",
    "over_refusal": ".utility",
    "over_refusal_rate": ".utility",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
