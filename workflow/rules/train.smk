# Training stage: data/{dataset}/manifest.json -> results/{dataset}/train/ckpt_final.pth.
# The rule's output is the final checkpoint, not ckpt_latest.pth: Snakemake deletes the
# outputs of a failed or interrupted job, and ckpt_latest.pth is what a rerun resumes from.


rule train:
    input:
        manifest="data/{dataset}/manifest.json",
        config=dataset_config,
    output:
        "results/{dataset}/train/ckpt_final.pth",
    params:
        code=code_version(),
    log:
        "logs/train/{dataset}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}.tsv"
    threads: workflow.cores
    resources:
        gpu=1,
        mem_mb=16000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d train --config {input.config} --data {input.manifest} --out $(dirname {output}) "
        "--ngpu {resources.gpu} > {log} 2>&1"
