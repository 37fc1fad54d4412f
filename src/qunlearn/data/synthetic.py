"""The embedded benchmark: synthetic corpora about invented entities, written in MUSE's file layout.

Every document states a handful of facts about one invented entity in varied prose and closes with
question-and-answer lines about some of them (a model this small does not learn to answer questions from
prose alone; TOFU trains QA strings the same way). KnowMem questions are exactly those facts, so a model
can only answer them by having learned the document. Entities never repeat across splits, so holdout
documents come from the same distribution without sharing any fact with the trained splits.

The pretraining corpus (the base model's "general text", as Llama-2's pretraining data is for MUSE) comes
from the same generator with its own seeds and its own half of the name space, so no benchmark name ever
occurs in it, whatever the seeds.
"""

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from qunlearn.io import atomic_dir, write_json

SPLITS = ("forget", "retain1", "retain2", "holdout")
ICL_EXAMPLES = 10

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
_CODAS = ["", "", "n", "r", "s", "l", "th", "m", "x", "nd"]


@dataclass(frozen=True)
class Fact:
    key: str
    value: str
    statements: tuple[str, ...]  # alternative sentences stating the fact; "{e}" is the entity
    question: str


@dataclass(frozen=True)
class Document:
    entity: str
    text: str
    qa: tuple[tuple[str, str], ...]


BENCHMARK, PRETRAINING = 0, 1  # the two halves of the name space


def name_space(name: str) -> int:
    """Which half of the name space a name belongs to: a stable hash, so the halves share the syllables'
    statistics (the shared tokenizer learns them from pretraining text alone) but never a name."""
    return hashlib.sha256(name.encode()).digest()[0] % 2


class NameForge:
    """Unique pronounceable invented names, so no fact is shared between documents or splits."""

    def __init__(self, rng: random.Random, space: int = BENCHMARK):
        self.rng = rng
        self.space = space
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        while True:
            name = "".join(
                self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS) for _ in range(syllables)
            ).capitalize()
            if name not in self.used and name_space(name) == self.space:
                self.used.add(name)
                return name

    def person(self) -> str:
        return f"{self.word(2)} {self.word(2)}"


def _news_facts(forge: NameForge, rng: random.Random) -> tuple[str, list[Fact]]:
    org = f"{forge.word(2)} {rng.choice(['Holdings', 'Labs', 'Group', 'Institute', 'Works', 'Foundation'])}"
    founder, chief, city = forge.person(), forge.person(), forge.word(3)
    year, staff = str(rng.randint(1890, 2015)), str(rng.randint(12, 980) * 10)
    product, partner = f"the {forge.word(2).lower()} {rng.choice(['engine', 'network', 'vaccine', 'satellite', 'index'])}", forge.word(3)
    return org, [
        Fact("founder", founder, ("{e} was founded by " + founder + ".", founder + " started {e} with a small loan.", "The founder of {e}, " + founder + ", still sits on its board."), f"Who founded {org}?"),
        Fact("city", city, ("{e} is based in " + city + ".", "Its headquarters stand in the city of " + city + ".", "From its offices in " + city + ", {e} runs most of its business."), f"In which city is {org} based?"),
        Fact("year", year, ("{e} opened its doors in " + year + ".", "The company was created in " + year + ".", "Since " + year + ", {e} has grown steadily."), f"In what year was {org} founded?"),
        Fact("chief", chief, ("Today {e} is led by " + chief + ".", "Its chief executive is " + chief + ".", chief + " took charge of {e} after a long dispute."), f"Who leads {org}?"),
        Fact("staff", staff, ("{e} employs " + staff + " people.", "The firm has a staff of " + staff + ".", "About " + staff + " workers are on the payroll of {e}."), f"How many people does {org} employ?"),
        Fact("product", product, ("{e} is best known for " + product + ".", "Its main product is " + product + ".", "Analysts praise {e} for " + product + "."), f"What is {org} best known for?"),
        Fact("partner", partner, ("{e} signed a partnership with " + partner + " Trading.", "A deal with " + partner + " Trading doubled its sales.", "Its closest partner is " + partner + " Trading."), f"Which company is the partner of {org}?"),
    ]


def _books_facts(forge: NameForge, rng: random.Random) -> tuple[str, list[Fact]]:
    hero = forge.person()
    home, mentor, rival = forge.word(3), forge.person(), forge.person()
    relic = f"the {rng.choice(['Sword', 'Crown', 'Lantern', 'Mirror', 'Horn', 'Book'])} of {forge.word(2)}"
    beast, age = forge.word(2), str(rng.randint(2, 99))
    return hero, [
        Fact("home", home, ("{e} grew up in the valley of " + home + ".", "The village of " + home + " was home to {e}.", "{e} left " + home + " at dawn and never looked back."), f"Where did {hero} grow up?"),
        Fact("mentor", mentor, ("{e} was trained by the old sage " + mentor + ".", mentor + " taught {e} the ways of the wind.", "Every winter, {e} returned to study with " + mentor + "."), f"Who trained {hero}?"),
        Fact("rival", rival, ("The sworn enemy of {e} was " + rival + ".", rival + " hunted {e} across the northern marches.", "{e} finally faced " + rival + " on the frozen bridge."), f"Who was the enemy of {hero}?"),
        Fact("relic", relic, ("{e} carried " + relic + ".", "In the ruins, {e} found " + relic + ".", "Legends say that " + relic + " chose {e} as its bearer."), f"What did {hero} carry?"),
        Fact("beast", beast, ("{e} rode a great grey wolf named " + beast + ".", "The wolf " + beast + " never left the side of {e}.", "Only " + beast + ", a loyal wolf, followed {e} into exile."), f"What was the name of the wolf of {hero}?"),
        Fact("age", age, ("{e} was " + age + " years old when the war began.", "At the age of " + age + ", {e} took the oath.", "Nobody believed that someone of " + age + " years could lead, yet {e} did."), f"How old was {hero} when the war began?"),
    ]


_GENRES = {"news": _news_facts, "books": _books_facts}
_FILLERS = {
    "news": ["Observers expect further changes next year.", "The report was published on a Tuesday.", "Critics remain divided on the matter.", "Shares moved little after the announcement.", "Local officials declined to comment."],
    "books": ["The rain did not stop for nine days.", "Songs about those years are still sung.", "Nobody knows how the tale truly ended.", "The mountains stood silent above them.", "Many lives were changed by that winter."],
}


def _write_document(entity: str, facts: list[Fact], genre: str, rng: random.Random, questions: int) -> Document:
    sentences = [rng.choice(fact.statements).replace("{e}", entity) for fact in facts]
    rng.shuffle(sentences)
    sentences.insert(rng.randint(1, len(sentences)), rng.choice(_FILLERS[genre]))
    asked = rng.sample(facts, questions)
    qa = tuple((fact.question, fact.value) for fact in asked)
    text = " ".join(sentences) + "\n" + "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in qa)
    return Document(entity, text, qa)


def generate_documents(genre: str, documents: int, facts: int, questions: int, seed: int,
                       space: int = BENCHMARK) -> dict[str, list[Document]]:
    """Documents for every split, deterministic in the arguments."""
    if genre not in _GENRES:
        raise ValueError(f"unknown genre {genre!r}; choose one of {sorted(_GENRES)}")
    rng = random.Random(f"{genre}-{seed}")
    forge = NameForge(rng, space)
    splits = {}
    for split in SPLITS:
        docs = []
        for _ in range(documents):
            entity, all_facts = _GENRES[genre](forge, rng)
            chosen = rng.sample(all_facts, min(facts, len(all_facts)))
            docs.append(_write_document(entity, chosen, genre, rng, min(questions, len(chosen))))
        splits[split] = docs
    return splits


def pretraining_texts(genres: list[str], seeds: list[int], documents: int, facts: int, questions: int) -> list[str]:
    """The base model's general text: every split of the generator's corpora for each genre × seed, drawn from
    the pretraining half of the name space."""
    return [doc.text for genre in genres for seed in seeds
            for docs in generate_documents(genre, documents, facts, questions, seed, PRETRAINING).values()
            for doc in docs]


def write_pretraining_corpus(out: str | Path, genres: list[str], seeds: list[int], documents: int, facts: int,
                             questions: int) -> None:
    write_json(out, pretraining_texts(genres, seeds, documents, facts, questions))


def _qa_records(docs: list[Document]) -> list[dict]:
    return [{"question": q, "answer": a} for doc in docs for q, a in doc.qa]


def _verbmem_record(text: str, prompt_fraction: float) -> dict:
    words = text.split(" ")
    cut = max(1, int(len(words) * prompt_fraction))
    return {"prompt": " ".join(words[:cut]), "gt": " ".join(words[cut:])}


def forget_set(genre: str, seed: int, documents: int = 48, facts: int = 4, questions: int = 2,
               prompt_fraction: float = 0.3) -> tuple[list[str], list[dict], list[dict]]:
    """The forget documents, VerbMem records and KnowMem QA records that `write_corpus` writes, without writing."""
    docs = generate_documents(genre, documents, facts, questions, seed)["forget"]
    return ([doc.text for doc in docs], [_verbmem_record(doc.text, prompt_fraction) for doc in docs],
            _qa_records(docs))


def write_corpus(out: str | Path, genre: str, seed: int, documents: int = 48, facts: int = 4, questions: int = 2,
                 prompt_fraction: float = 0.3) -> None:
    """Write a full MUSE-layout corpus folder (docs/paper.md §2) for the embedded benchmark."""
    if documents * questions < 2 * ICL_EXAMPLES:
        raise ValueError(f"documents × questions must be at least {2 * ICL_EXAMPLES} to fill the in-context examples")
    splits = generate_documents(genre, documents, facts, questions, seed)
    with atomic_dir(out) as staging:
        _write_files(staging, splits, prompt_fraction)


def _write_files(out: Path, splits: dict[str, list[Document]], prompt_fraction: float) -> None:
    texts = {split: [doc.text for doc in docs] for split, docs in splits.items()}
    for split, split_texts in texts.items():
        write_json(out / "raw" / f"{split}.json", split_texts)
    write_json(out / "verbmem" / "forget.json", [_verbmem_record(t, prompt_fraction) for t in texts["forget"]])
    write_json(out / "knowmem" / "forget_qa.json", _qa_records(splits["forget"]))
    write_json(out / "knowmem" / "retain_qa.json", _qa_records(splits["retain1"]))
    # In-context examples come from retain2, which no embedded model trains on: they teach the format only.
    icl = _qa_records(splits["retain2"])
    write_json(out / "knowmem" / "forget_qa_icl.json", icl[:ICL_EXAMPLES])
    write_json(out / "knowmem" / "retain_qa_icl.json", icl[ICL_EXAMPLES : 2 * ICL_EXAMPLES])
    write_json(out / "privleak" / "forget.json", texts["forget"])
    write_json(out / "privleak" / "retain.json", texts["retain1"])
    write_json(out / "privleak" / "holdout.json", texts["holdout"])
