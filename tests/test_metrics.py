import random

import pytest

from qunlearn.evaluate.metrics import (cut_answer, forget_holdout_auc, knowmem_prompt, mean_rouge_l, min_k_score,
                                       privleak, rouge_l_f1)


def test_rouge_l_f1_is_rouge_scores_own():
    """The same scores as rouge_score's RougeScorer on generated-looking text: punctuation, case, digits, repeats,
    empty and non-ASCII outputs."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(0)
    words = ["the", "The", "council", "voted,", "7", "times", "in", "2019.", "Mayor's", "plan", "café", "--", ""]
    pairs = [(" ".join(rng.choices(words, k=rng.randint(0, 40))), " ".join(rng.choices(words, k=rng.randint(0, 40))))
             for _ in range(300)]
    for prediction, reference in pairs:
        assert rouge_l_f1(prediction, reference) == scorer.score(reference, prediction)["rougeL"].fmeasure


def test_rouge_l_f1_by_hand():
    # LCS of "the cat sat" and "the cat ran away" is "the cat": P = 2/3, R = 2/4, F1 = 4/7.
    assert rouge_l_f1("the cat sat", "the cat ran away") == pytest.approx(4 / 7)
    assert rouge_l_f1("a b c", "a b c") == 1.0
    assert rouge_l_f1("x y", "a b") == 0.0
    assert mean_rouge_l(["a b c", "x y"], ["a b c", "a b"]) == pytest.approx(50.0)


def test_min_k_takes_the_lowest_fraction():
    logprobs = [-1.0, -5.0, -0.5, -3.0, -2.0]
    assert min_k_score(logprobs, 0.4) == pytest.approx(4.0)  # floor(5 * 0.4) = 2 lowest: -5, -3
    assert min_k_score(logprobs, 0.1) == pytest.approx(5.0)  # at least one token


def test_auc_and_privleak_by_hand():
    # Holdout texts are less likely (higher Min-K) than forget texts: AUC of score -MinK with holdout = 1 is 0.
    assert forget_holdout_auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert forget_holdout_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    # One of four forget/holdout pairs ordered the other way round.
    assert forget_holdout_auc([1.0, 3.5], [3.0, 4.0]) == pytest.approx(0.25)
    # A tie counts half, as the ROC curve's trapezoid over tied scores does (sklearn's roc_curve and auc: 0.125).
    assert forget_holdout_auc([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.125)
    assert privleak(0.25, 0.5) == pytest.approx(-50.0)
    assert privleak(0.5, 0.5) == 0.0


def test_knowmem_prompt_and_cut():
    prompt = knowmem_prompt([("Q1?", "A1"), ("Q2?", "A2")], "Q3?")
    assert prompt == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer: "
    assert cut_answer("Paris\n\nQuestion: next") == "Paris"
    assert cut_answer("Paris\nQuestion: next") == "Paris"
    assert cut_answer("Paris Question: x") == "Paris "
    assert cut_answer("") == ""
