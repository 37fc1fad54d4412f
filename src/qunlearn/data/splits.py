"""The held-out split of the forget set (docs/attacks.md): halves A and B by the facts they carry, so that an attack
trains on A's documents and is scored on B's items alone, which no training step saw.

MUSE names no fact, so the rule reads them off the text (case and runs of whitespace ignored):
- a VerbMem item belongs to the forget documents that contain its prompt; among several, those that also contain
  its gt (all of them if none does);
- a KnowMem forget item belongs to the forget documents that contain its answer as whole words; among several, those
  sharing the most distinct words with its question, every document tied for the most (a tie never separates an
  item from a document that may state its fact).
Documents that share an item form one group (union-find), so a fact stated in several documents stays in one half.
Groups go to A or B, the largest first and groups of one size in the order of a seeded hash of their first
document's text, each to the half with fewer documents so far (A on a tie); items follow their documents. Items that match no document are in neither half, and
counted. Torch-free: the Snakefile checks at start-up that neither half is empty.
"""

import hashlib
import re
from dataclasses import dataclass

from qunlearn.data.muse import MuseCorpus, load_corpus
from qunlearn.data.synthetic import forget_set
from qunlearn.errors import QunlearnError

HALVES = ("a", "b")
SPLIT_METRICS = ("verbmem_f", "knowmem_f")  # the forget metrics, whose items the split divides


@dataclass(frozen=True)
class ForgetSplit:
    documents: dict[str, list[int]]  # half -> forget document indices
    items: dict[str, dict[str, list[int]]]  # forget metric -> half -> item indices
    unmatched: dict[str, int]  # forget metric -> items in neither half

    def as_json(self) -> dict:
        counts = {"documents": {h: len(self.documents[h]) for h in HALVES},
                  **{m: {h: len(self.items[m][h]) for h in HALVES} for m in SPLIT_METRICS}}
        return {"documents": self.documents, "items": self.items, "unmatched": self.unmatched, "counts": counts}

    @classmethod
    def from_json(cls, data: dict) -> "ForgetSplit":
        return cls(data["documents"], data["items"], data["unmatched"])


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def verbmem_documents(documents: list[str], prompt: str, gt: str) -> list[int]:
    """The (normalised) documents a VerbMem item comes from."""
    prompt, gt = _normal(prompt), _normal(gt)
    holding = [i for i, doc in enumerate(documents) if prompt and prompt in doc]
    with_gt = [i for i in holding if gt and gt in documents[i]]
    return with_gt or holding


def knowmem_documents(documents: list[str], words: list[set[str]], question: str, answer: str) -> list[int]:
    """The (normalised) documents, with their words, that state a KnowMem item's answer."""
    answer = _normal(answer)
    if not answer:
        return []
    pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)")
    holding = [i for i, doc in enumerate(documents) if pattern.search(doc)]
    if len(holding) < 2:
        return holding
    asked = _words(question)
    shared = {i: len(asked & words[i]) for i in holding}
    return [i for i in holding if shared[i] == max(shared.values())]


def _groups(links: list[list[int]], n_documents: int) -> list[list[int]]:
    """The documents joined by shared items (union-find), each group sorted, in order of its first document."""
    parent = list(range(n_documents))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for linked in links:
        for other in linked[1:]:
            parent[root(other)] = root(linked[0])
    groups: dict[int, list[int]] = {}
    for i in range(n_documents):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def split_forget(documents: list[str], verbmem: list[tuple[str, str]], knowmem: list[tuple[str, str]],
                 seed: int) -> ForgetSplit:
    """Halves A and B of the forget documents and of the VerbMem and KnowMem-forget items (the module's rule)."""
    normal = [_normal(doc) for doc in documents]
    words = [_words(doc) for doc in normal]
    links = {"verbmem_f": [verbmem_documents(normal, prompt, gt) for prompt, gt in verbmem],
             "knowmem_f": [knowmem_documents(normal, words, question, answer) for question, answer in knowmem]}
    groups = _groups([docs for metric in SPLIT_METRICS for docs in links[metric]], len(documents))
    order = sorted(groups, key=lambda group: (-len(group),
                                              hashlib.sha256(f"{seed}:{normal[group[0]]}".encode()).hexdigest()))
    half_of, sizes = {}, {h: 0 for h in HALVES}
    for group in order:
        half = min(HALVES, key=lambda h: sizes[h])  # A on a tie: HALVES' order
        sizes[half] += len(group)
        half_of.update(dict.fromkeys(group, half))
    items = {metric: {h: [i for i, docs in enumerate(links[metric]) if docs and half_of[docs[0]] == h] for h in HALVES}
             for metric in SPLIT_METRICS}
    return ForgetSplit({h: sorted(i for i, x in half_of.items() if x == h) for h in HALVES}, items,
                       {metric: sum(not docs for docs in links[metric]) for metric in SPLIT_METRICS})


def split_corpus(corpus: MuseCorpus, seed: int) -> ForgetSplit:
    return split_forget(corpus.raw["forget"], corpus.verbmem,
                        [(qa.question, qa.answer) for qa in corpus.knowmem["forget_qa"]], seed)


def start_up_split(spec: dict, seed: int) -> ForgetSplit:
    """A corpus' split before any job runs: an embedded one's from the generator (as the corpus rule will write
    it), a real one's from its folder."""
    if "embedded" not in spec:
        return split_corpus(load_corpus(spec["path"]), seed)
    documents, verbmem, knowmem = forget_set(seed=seed, **spec["embedded"])
    return split_forget(documents, [(r["prompt"], r["gt"]) for r in verbmem],
                        [(r["question"], r["answer"]) for r in knowmem], seed)


def check_halves(split: ForgetSplit, corpus: str, spec: dict) -> None:
    """Refuse a split an attack cannot use: no document to train on in A, or no item of a forget metric in B."""
    key = f"corpora.{corpus}.{'embedded.documents' if 'embedded' in spec else 'path'}"
    fix = ("give the corpus more forget documents (at least two that share no VerbMem or KnowMem item), "
           "or remove `attacks`")
    documents = sum(map(len, split.documents.values()))
    for half in HALVES:
        if not split.documents[half]:
            raise QunlearnError(f"{key}: attacks split the forget set in two halves by fact, and half "
                                f"{half.upper()} has no document ({documents} forget documents, joined by shared "
                                f"items into one group)", fix)
    for metric in SPLIT_METRICS:
        if not split.items[metric]["b"]:
            raise QunlearnError(f"{key}: attacks are scored on half B of the forget set, and half B has no "
                                f"{metric} item ({split.unmatched[metric]} match no forget document)", fix)
