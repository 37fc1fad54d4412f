# Attacks other than quantization (docs/attacks.md): relearning on half A of the forget set, benign fine-tuning and
# pruning, each run on the target, the retrain and every unlearned model, and evaluated like a format (evaluate
# rule, `format` = the attack's id). Their verdicts, scored on half B's items, come with the summary.
rule split_forget:
    input:
        corpus=corpus_dir,
    output:
        "results/splits/{corpus}.json",
    log:
        "results/logs/split_forget/{corpus}.log",
    benchmark:
        "results/benchmarks/split_forget/{corpus}.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **job_resources("split_forget"),
    params:
        seed=config["seed"],
    script:
        "../scripts/split_forget.py"


rule attack:
    input:
        model=model_dir,
        tokenizer=model_tokenizer_dir,
        corpus=corpus_dir,
        split="results/splits/{corpus}.json",
    output:
        directory("results/attacked/{corpus}/{pair}/{model}/{attack}"),
    log:
        "results/logs/attack/{corpus}/{pair}/{model}/{attack}.log",
    benchmark:
        "results/benchmarks/attack/{corpus}/{pair}/{model}/{attack}.tsv"
    wildcard_constraints:
        attack=one_of(list(ATTACK_SPECS)),
    conda:
        "../../envs/attack.yaml"
    threads: config["threads"]
    resources:
        **job_resources("attack"),
    params:
        settings=lambda wc: PROVENANCE.attack_settings(wc.attack),
        seed=config["seed"],
    script:
        "../scripts/attack.py"
