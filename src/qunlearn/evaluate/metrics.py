"""MUSE's metric arithmetic (docs/paper.md §3), separate from any model so it can be tested on hand-made cases."""

import math

import numpy as np
from rouge_score import rouge_scorer
from sklearn.metrics import auc, roc_curve

MINK_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")

_scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l_f1(prediction: str, reference: str) -> float:
    return _scorer.score(reference, prediction)["rougeL"].fmeasure


def rouge_l_scores(predictions: list[str], references: list[str]) -> list[float]:
    """Per item, ROUGE-L F1 on MUSE's 0–100 scale (the items a confidence interval resamples)."""
    return [100 * rouge_l_f1(p, r) for p, r in zip(predictions, references, strict=True)]


def mean_rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 on MUSE's 0–100 scale."""
    return float(np.mean(rouge_l_scores(predictions, references)))


def cut_answer(text: str) -> str:
    """KnowMem keeps the output up to the first stop string."""
    for stop in KNOWMEM_STOPS:
        text = text.split(stop)[0]
    return text


def icl_prefix(icl: list[tuple[str, str]]) -> str:
    """KnowMem's in-context examples, the part every question's prompt shares."""
    return "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in icl)


def knowmem_prompt(icl: list[tuple[str, str]], question: str) -> str:
    return f"{icl_prefix(icl)}Question: {question}\nAnswer: "


def min_k_score(token_logprobs: list[float], k: float) -> float:
    """−mean of the lowest ⌊N·k⌋ token log-probabilities (at least one)."""
    count = max(1, math.floor(len(token_logprobs) * k))
    return -float(np.mean(sorted(token_logprobs)[:count]))


def mink_table(token_logprobs: list[list[float]]) -> dict[str, list[float]]:
    """Min-K% of every text for every k in MINK_FRACTIONS, keyed by str(k) as stored in the metrics JSON."""
    return {str(k): [min_k_score(lp, k) for lp in token_logprobs] for k in MINK_FRACTIONS}


def mink_auc(mink: dict[str, dict[str, list[float]]], k: float) -> float:
    """forget_holdout_auc on the stored Min-K% tables (splits 'forget' and 'holdout') at fraction k."""
    return forget_holdout_auc(mink["forget"][str(k)], mink["holdout"][str(k)])


def forget_holdout_auc(forget_scores: list[float], holdout_scores: list[float]) -> float:
    """AUC of telling forget (label 0) from holdout (label 1) texts with score −MinK, as MUSE computes it."""
    labels = [0] * len(forget_scores) + [1] * len(holdout_scores)
    scores = -np.asarray(list(forget_scores) + list(holdout_scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(auc(fpr, tpr))


def privleak(auc_model: float, auc_retrain: float) -> float:
    """(AUC_model − AUC_retrain) / AUC_retrain × 100: 0 is ideal, −100 leaks like a model that never forgot."""
    return (auc_model - auc_retrain) / auc_retrain * 100
