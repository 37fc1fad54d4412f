"""A one-at-a-time evaluator that follows MUSE step by step: the oracle for the batched evaluator.

No padding, no shared-prefix cache, no early stop: each prompt is encoded with BOS, greedily continued for
the full 128 (VerbMem) or 32 (KnowMem) new tokens, then cut as MUSE cuts it; each Min-K% text runs alone.
"""

import torch
from tqdm import tqdm

from qunlearn.data.muse import MuseCorpus
from qunlearn.evaluate.evaluator import KNOWMEM_NEW_TOKENS, KNOWMEM_SPLITS, VERBMEM_NEW_TOKENS, _encode, icl_examples
from qunlearn.evaluate.metrics import cut_answer, knowmem_prompt, mean_rouge_l, mink_auc, mink_table


@torch.no_grad()
def _continue(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    input_ids = torch.tensor([_encode(tokenizer, prompt)], device=model.device)
    output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                            do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)


@torch.no_grad()
def _token_logprobs(model, tokenizer, text: str, max_len: int) -> list[float]:
    input_ids = torch.tensor([_encode(tokenizer, text)[:max_len]], device=model.device)
    logp = torch.log_softmax(model(input_ids=input_ids).logits.float(), -1)
    return logp[0, :-1].gather(-1, input_ids[0, 1:, None]).squeeze(-1).tolist()


def muse_verbmem_reference(tokenizer, gt: str) -> str:
    """MUSE's rule as its code states it: the tokenizer's own encoding (Llama's puts BOS first), the first 128
    tokens, decoded without special tokens."""
    return tokenizer.decode(tokenizer(gt)["input_ids"][:VERBMEM_NEW_TOKENS], skip_special_tokens=True)


def reference_evaluate(model, tokenizer, corpus: MuseCorpus, mink_k: float) -> dict:
    verbmem_outputs = [_continue(model, tokenizer, p, VERBMEM_NEW_TOKENS) for p, _ in tqdm(corpus.verbmem, desc="verbmem")]
    references = [muse_verbmem_reference(tokenizer, gt) for _, gt in corpus.verbmem]
    result = {"verbmem_f": mean_rouge_l(verbmem_outputs, references), "outputs": {"verbmem_f": verbmem_outputs}}
    for metric, split in KNOWMEM_SPLITS.items():
        icl = icl_examples(corpus, split)
        questions = corpus.knowmem[f"{split}_qa"]
        answers = [cut_answer(_continue(model, tokenizer, knowmem_prompt(icl, qa.question), KNOWMEM_NEW_TOKENS))
                   for qa in tqdm(questions, desc=f"knowmem-{split}")]
        result[metric] = mean_rouge_l(answers, [qa.answer for qa in questions])
        result["outputs"][metric] = answers
    max_len = model.config.max_position_embeddings
    mink = {
        split: mink_table([_token_logprobs(model, tokenizer, t, max_len) for t in corpus.privleak[split]])
        for split in ("forget", "holdout")
    }
    result["privleak_auc"] = mink_auc(mink, mink_k)
    result["mink"] = mink
    return result
