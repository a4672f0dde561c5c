# Reanimate stage: video A's motion performed by video B's individual (a skeleton model with one body
# per video). The folder (meshes, motion.json, rigged glb) is written beside its final place and moved
# there whole; the video is written last.


rule reanimate:
    input:
        checkpoint="results/{dataset}/train/ckpt_final.pth",
        manifest="data/{dataset}/manifest.json",
    output:
        video=report(
            "results/{dataset}/reanimate/{motion}-to-{inst}.mp4",
            caption="../report/reanimate.rst",
            category="Renders",
        ),
        glb="results/{dataset}/reanimate/{motion}-to-{inst}/animated.glb",
    params:
        folder=lambda wildcards, output: Path(output.glb).parent,
        code=code_version("reanimate"),
    log:
        "logs/reanimate/{dataset}-{motion}-to-{inst}.log",
    benchmark:
        "logs/benchmarks/reanimate/{dataset}-{motion}-to-{inst}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d reanimate --checkpoint {input.checkpoint} --data {input.manifest} --motion_id {wildcards.motion} "
        "--inst_id {wildcards.inst} --out {params.folder} --video {output.video} > {log} 2>&1"
