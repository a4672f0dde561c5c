# Evaluate stage: mask IoU and masked PSNR of every training view and the model's consistency
# across views (how much the deformation turns the body; whether the shape jumps between nearby
# frames), for every dataset; with ground truth (synthetic datasets), also the exported meshes of
# video 0 and every video's posed meshes against the true ones (Sim(3), surface samples), and for a
# skeleton model the true reanimations and bone lengths. Views are rendered with the training's
# samples per ray (the CLI's default).


rule evaluate:
    input:
        checkpoint="results/{dataset}/train/ckpt_final.pth",
        manifest="data/{dataset}/manifest.json",
        export="results/{dataset}/export/0/motion.json",
    output:
        "results/{dataset}/eval/metrics.json",
    params:
        code=code_version("evaluate"),
        meshes=lambda wildcards, input: Path(input.export).parent / "meshes",
        gt="data/{dataset}/GroundTruth/{dataset}-0000",
        gt_root="data/{dataset}/GroundTruth",
    log:
        "logs/evaluate/{dataset}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternation(datasets_with_source("synthetic")),
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d evaluate --checkpoint {input.checkpoint} --data {input.manifest} "
        "--pred-meshes {params.meshes} --gt {params.gt} --points surface --gt-root {params.gt_root} "
        "--out {output} > {log} 2>&1"


rule evaluate_without_ground_truth:
    input:
        checkpoint="results/{dataset}/train/ckpt_final.pth",
        manifest="data/{dataset}/manifest.json",
    output:
        "results/{dataset}/eval/metrics.json",
    params:
        code=code_version("evaluate"),
    log:
        "logs/evaluate/{dataset}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternation(
            datasets_with_source("path") + datasets_with_source("url") + datasets_with_source("videos")
        ),
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d evaluate --checkpoint {input.checkpoint} --data {input.manifest} --out {output} > {log} 2>&1"
