"""Evaluation: attack success rate, refusal / coherence judges, benign accuracy, perplexity, zero-shot tasks."""

from excise.evaluation.asr import ASRResult, any_of_n, attack_success_rate, load_suffixes
from excise.evaluation.config import EvalConfig
from excise.evaluation.endpoint import EndpointJudge, JudgeUnavailable
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
from excise.evaluation.kl import KLReference
from excise.evaluation.lmeval import evaluate_lmeval, evaluate_mc, evaluate_tasks, mc_accuracy
from excise.evaluation.perplexity import perplexity, token_nll
from excise.evaluation.semantic import SemanticJudge, default_judge
from excise.evaluation.suite import build_kl_reference, evaluate_safety
from excise.evaluation.utility import (
    AccuracyResult,
    benign_accuracy,
    is_correct,
    over_refusal,
    over_refusal_rate,
)

__all__ = [
    "EvalConfig",
    "REFUSAL_PHRASES",
    "ASRResult",
    "AccuracyResult",
    "CoherenceGate",
    "EndpointJudge",
    "JudgeUnavailable",
    "KLReference",
    "SemanticJudge",
    "build_kl_reference",
    "default_judge",
    "over_refusal",
    "over_refusal_rate",
    "Judge",
    "KeywordJudge",
    "ReferencePerplexity",
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
