# Training stage: data/{dataset}/manifest.json -> results/{dataset}/train/ckpt_final.pth.
# The rule's output is the final checkpoint, not ckpt_latest.pth: Snakemake deletes the
# outputs of a failed or interrupted job, and ckpt_latest.pth is what a rerun resumes from.
# The dataset YAML is a params value: only its model: and train: sections (training_settings) decide
# whether training is stale, so a comment or a source: edit does not retrain by file time.


rule train:
    input:
        manifest="data/{dataset}/manifest.json",
    output:
        "results/{dataset}/train/ckpt_final.pth",
    params:
        config=dataset_config,
        settings=training_settings,
        code=code_version("train"),
    log:
        "logs/train/{dataset}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}.tsv"
    threads: workflow.cores
    resources:
        gpu=train_gpus,
        mem_mb=16000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d train --config {params.config} --data {input.manifest} --out $(dirname {output}) "
        "--ngpu {resources.gpu} > {log} 2>&1"
