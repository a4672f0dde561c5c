# Export stage: a trained model -> results/{dataset}/export/{inst}/ (meshes, motion.json,
# bones.obj, animated.glb). The folder is written beside its final place and moved there
# whole, so animated.glb (the rule's output) exists only in a complete export.


rule export:
    input:
        checkpoint="results/{dataset}/train/ckpt_final.pth",
        manifest="data/{dataset}/manifest.json",
    output:
        glb="results/{dataset}/export/{inst}/animated.glb",
        motion="results/{dataset}/export/{inst}/motion.json",
    params:
        code=code_version("export"),
    log:
        "logs/export/{dataset}-{inst}.log",
    benchmark:
        "logs/benchmarks/export/{dataset}-{inst}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d export --checkpoint {input.checkpoint} --data {input.manifest} --inst_id {wildcards.inst} "
        "--out $(dirname {output.glb}) > {log} 2>&1"
