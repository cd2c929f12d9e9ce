"""Evaluation: attack success rate, refusal / coherence judges, benign accuracy, perplexity, zero-shot tasks."""

from excise.evaluation.asr import ASRResult, any_of_n, attack_success_rate, load_suffixes
from excise.evaluation.generate import generate, left_pad
from excise.evaluation.judges import (
    REFUSAL_PHRASES,
    CoherenceGate,
    Judge,
    KeywordJudge,
    ReferencePerplexity,
    Verdict,
    is_refusal,
    judge_all,
)
from excise.evaluation.lmeval import evaluate_lmeval, evaluate_mc, evaluate_tasks, mc_accuracy
from excise.evaluation.perplexity import perplexity, token_nll
from excise.evaluation.suite import SafetyEvalConfig, evaluate_safety
from excise.evaluation.utility import AccuracyResult, benign_accuracy, is_correct

__all__ = [
    "REFUSAL_PHRASES",
    "ASRResult",
    "AccuracyResult",
    "CoherenceGate",
    "Judge",
    "KeywordJudge",
    "ReferencePerplexity",
    "SafetyEvalConfig",
    "Verdict",
    "any_of_n",
    "attack_success_rate",
    "benign_accuracy",
    "evaluate_lmeval",
    "evaluate_mc",
    "evaluate_safety",
    "evaluate_tasks",
    "generate",
    "is_correct",
    "is_refusal",
    "judge_all",
    "left_pad",
    "load_suffixes",
    "mc_accuracy",
    "perplexity",
    "token_nll",
]
