"""Attacks other than quantization: the held-out split against the generator's truth, what relearning trains on, a
zero-step relearn, and pruning's sparsity and 2:4 pattern."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.attacks.transforms import finetune_texts, prune, pruned_linears, relearn, relearn_texts
from qunlearn.config.checks import attack_id, attack_spec
from qunlearn.data.muse import load_corpus
from qunlearn.data.splits import check_halves, split_corpus, split_forget, start_up_split
from qunlearn.data.synthetic import generate_documents, write_corpus
from qunlearn.errors import QunlearnError
from qunlearn.models.checkpoints import load_model
from qunlearn.registry import ATTACKS, resolve

SPEC = {"genre": "news", "documents": 12, "facts": 3, "questions": 2}  # the corpus_dir fixture's corpus


def _truth(genre: str, documents: int, facts: int, questions: int, seed: int):
    """The generator's forget documents, and for each the VerbMem and KnowMem items write_corpus writes from it."""
    docs = generate_documents(genre, documents, facts, questions, seed)["forget"]
    asked = min(questions, facts)
    return docs, {i: ([i], list(range(i * asked, (i + 1) * asked))) for i in range(len(docs))}


@pytest.mark.parametrize("genre,documents,seed", [("news", 40, 0), ("books", 40, 0), ("news", 11, 3)])
def test_the_split_puts_every_facts_document_and_items_in_one_half(tmp_path, genre, documents, seed):
    write_corpus(tmp_path, genre, seed, documents=documents, facts=4, questions=2)
    split = split_corpus(load_corpus(tmp_path), seed)
    docs, items = _truth(genre, documents, 4, 2, seed)
    half_of = {doc: half for half, indices in split.documents.items() for doc in indices}
    assert sorted(half_of) == list(range(len(docs)))  # every document in exactly one half
    for doc, (verbmem, knowmem) in items.items():  # an entity's facts are its document's alone
        for metric, indices in (("verbmem_f", verbmem), ("knowmem_f", knowmem)):
            assert all(i in split.items[metric][half_of[doc]] for i in indices), (doc, metric)
            other = "a" if half_of[doc] == "b" else "b"
            assert not set(indices) & set(split.items[metric][other]), (doc, metric)
    assert split.unmatched == {"verbmem_f": 0, "knowmem_f": 0}
    assert abs(len(split.documents["a"]) - len(split.documents["b"])) <= 1
    assert split == start_up_split({"embedded": {"genre": genre, "documents": documents, "facts": 4, "questions": 2}},
                                   seed)  # the start-up check sees the split the rule writes


def test_documents_sharing_a_fact_share_a_half_and_unmatched_items_are_counted():
    documents = [f"Alpha {i} founded the Beta{i} works in {1900 + i}. Filler text here." for i in range(6)]
    documents[4] = "The Beta1 works were founded by Alpha 1, a second account."  # doc 1's fact, stated again
    verbmem = [("Alpha 0 founded", "the Beta0 works"), ("ALPHA 2   founded", "the beta2 works"), ("nowhere", "x")]
    knowmem = [("Who founded the Beta1 works?", "Alpha 1"), ("When was Beta3 founded?", "1903"),
               ("When was Beta5 founded?", "1905"), ("What is unknown?", "Gamma")]
    split = split_forget(documents, verbmem, knowmem, seed=0)
    half_of = {doc: half for half, indices in split.documents.items() for doc in indices}
    assert half_of[1] == half_of[4]  # one group: both state Alpha 1's fact
    assert 1 in split.items["verbmem_f"][half_of[2]]  # case and runs of whitespace ignored
    assert 0 in split.items["knowmem_f"][half_of[1]] and 1 in split.items["knowmem_f"][half_of[3]]
    assert split.unmatched == {"verbmem_f": 1, "knowmem_f": 1}  # "nowhere" and "Gamma" match no document
    assert split == split_forget(documents, verbmem, knowmem, seed=0)  # deterministic
    assert len(split.documents["a"]) == len(split.documents["b"]) == 3  # balanced by documents


def test_a_whole_words_answer_and_the_most_shared_question_words_pick_the_document():
    documents = ["Kora Labs employs 450 people.", "Dren Works employs 4500 people.", "Kora Labs was founded in 1950.",
                 "Dren Works was founded in 1950."]
    split = split_forget(documents, [], [("How many people does Dren Works employ?", "4500"),
                                         ("In what year was Kora Labs founded?", "1950")], seed=0)
    halves = {doc: half for half, indices in split.documents.items() for doc in indices}
    assert 0 in split.items["knowmem_f"][halves[1]] and 1 in split.items["knowmem_f"][halves[2]]
    assert split.unmatched["knowmem_f"] == 0


def test_a_forget_set_too_small_to_split_is_refused_with_its_key_and_fix(tmp_path):
    split = split_forget(["The only document, about Alpha."], [("The only", "document")], [("About?", "Alpha")], 0)
    with pytest.raises(QunlearnError) as error:
        check_halves(split, "toy", {"path": str(tmp_path)})
    assert error.value.problem.startswith("corpora.toy.path: ") and "half B has no document" in error.value.problem
    assert "more forget documents" in error.value.fix
    check_halves(start_up_split({"embedded": SPEC}, 0), "toy", {"embedded": SPEC})  # 12 documents: both halves


def test_relearning_trains_on_half_a_and_never_on_half_bs_items(corpus_dir):
    corpus = load_corpus(corpus_dir)
    split = split_corpus(corpus, 0)
    texts = relearn_texts(corpus, split)
    assert texts == [corpus.raw["forget"][i] for i in split.documents["a"]] and texts
    docs, _ = _truth(**SPEC, seed=0)
    for i in split.items["verbmem_f"]["b"]:
        prompt, gt = corpus.verbmem[i]
        assert not any(prompt in text or gt in text for text in texts)
    for i in split.items["knowmem_f"]["b"]:
        qa, entity = corpus.knowmem["forget_qa"][i], docs[i // SPEC["questions"]].entity
        assert not any(qa.question in text or entity in text for text in texts)  # B's entities: nowhere in A
    benign = finetune_texts(corpus, attack_spec({"kind": "finetune"}))
    assert benign == corpus.raw["retain2"] and not any(doc.entity in text for doc in docs for text in benign)


def _model_for(tokenizer, dtype=torch.float32):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).to(dtype).eval()


@pytest.mark.parametrize("precision", ["bf16", "fp32", "mixed"])
def test_a_zero_step_relearn_leaves_the_model_bit_for_bit_and_one_step_moves_it(corpus_dir, toy_tokenizer, precision):
    corpus = load_corpus(corpus_dir)
    split = split_corpus(corpus, 0)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    settings = {**attack_spec({"kind": "relearn", "precision": precision}), "max_len": 64}
    before = {k: v.clone() for k, v in _model_for(toy_tokenizer, dtype).state_dict().items()}
    for steps, unchanged in ((0, True), (1, False)):
        model = _model_for(toy_tokenizer, dtype)
        record = relearn(model, toy_tokenizer, corpus, split, {**settings, "steps": steps}, seed=0)
        assert record["steps"] == steps and record["documents"] == len(split.documents["a"])
        same = [torch.equal(before[k], v) for k, v in model.state_dict().items()]
        assert all(same) if unchanged else not all(same)


def _pruned(tmp_path, tokenizer, corpus, method, sparsity, structure):
    _model_for(tokenizer).save_pretrained(tmp_path / "model")  # llmcompressor's oneshot wants a model from a folder
    model = load_model(tmp_path / "model")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = {**attack_spec({"kind": "prune", "method": method, "sparsity": sparsity, "structure": structure}),
                "calibration": {"split": "retain2", "samples": 4, "seq_len": 64}}
    record = prune(model, tokenizer, corpus, None, settings, seed=0)
    return model, before, record


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("sparsity", [0.5, 0.25])
def test_pruning_zeroes_at_least_its_sparsity_of_each_decoder_matrix_and_nothing_else(
        tmp_path, corpus_dir, toy_tokenizer, method, sparsity):
    model, before, record = _pruned(tmp_path, toy_tokenizer, load_corpus(corpus_dir), method, sparsity, "unstructured")
    pruned = pruned_linears(model)
    assert len(pruned) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    for name, module in pruned.items():
        assert (module.weight == 0).float().mean() >= sparsity and record["zeros"][name] >= sparsity, name
    for name, value in model.state_dict().items():  # lm_head, embeddings and norms untouched
        if name.removesuffix(".weight") not in pruned:
            assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_2_of_4_pruning_zeroes_two_of_every_four_consecutive_weights(tmp_path, corpus_dir, toy_tokenizer, method):
    model, _, _ = _pruned(tmp_path, toy_tokenizer, load_corpus(corpus_dir), method, 0.5, "2:4")
    for name, module in pruned_linears(model).items():
        groups = module.weight.reshape(module.out_features, -1, 4)
        assert ((groups == 0).sum(-1) >= 2).all(), name


def test_every_attack_name_has_an_implementation_and_an_id():
    assert all(callable(resolve(attack.impl)) for attack in ATTACKS.values()) and len(ATTACKS) == 3
    ids = {kind: attack_id(attack_spec({"kind": kind})) for kind in ATTACKS}
    assert ids == {"relearn": "relearn-s30-lr3e-5-b4-bf16", "finetune": "finetune-retain2-s30-lr3e-5-b4-bf16",
                   "prune": "prune-wanda-50"}
    assert attack_id(attack_spec({"kind": "prune", "structure": "2:4", "method": "magnitude"})) == "prune-magnitude-2of4"
