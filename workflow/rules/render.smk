# Render stage: videos of a trained model, rgb | mask | depth | normal | canonical xyz.


rule render_reference:
    input:
        checkpoint="results/{dataset}/train/ckpt_final.pth",
        manifest="data/{dataset}/manifest.json",
    output:
        report(
            "results/{dataset}/reference-{inst}.mp4",
            caption="../report/reference.rst",
            category="Renders",
        ),
    params:
        code=code_version("render"),
    log:
        "logs/render_reference/{dataset}-{inst}.log",
    benchmark:
        "logs/benchmarks/render_reference/{dataset}-{inst}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d render --checkpoint {input.checkpoint} --data {input.manifest} --inst_id {wildcards.inst} "
        "--viewpoint ref --out {output} > {log} 2>&1"


rule render_turntable:
    input:
        checkpoint="results/{dataset}/train/ckpt_final.pth",
        manifest="data/{dataset}/manifest.json",
    output:
        report(
            "results/{dataset}/turntable.mp4",
            caption="../report/turntable.rst",
            category="Renders",
        ),
    params:
        code=code_version("render"),
    log:
        "logs/render_turntable/{dataset}.log",
    benchmark:
        "logs/benchmarks/render_turntable/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d render --checkpoint {input.checkpoint} --data {input.manifest} --inst_id 0 "
        "--viewpoint rot-30-360 --out {output} > {log} 2>&1"
