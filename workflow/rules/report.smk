# Report stage: training curves, then one self-contained page per dataset (videos, the animated
# glb in a 3D viewer, curves, metrics, the input preview).


rule training_curves:
    input:
        "results/{dataset}/train/ckpt_final.pth",
    output:
        report(
            "results/{dataset}/train/curves.png",
            caption="../report/curves.rst",
            category="Training",
        ),
    params:
        logdir=lambda wildcards, input: Path(input[0]).parent / "tensorboard",
        code=code_version("curves"),
    log:
        "logs/training_curves/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "lab4d curves --logdir {params.logdir} --title {wildcards.dataset} --out {output} > {log} 2>&1"


rule report:
    input:
        unpack(report_inputs),
    output:
        "results/{dataset}/report.html",
    params:
        export=lambda wildcards, input: Path(input.glb).parent,
        # Installing the viewer later reruns the page (which linked the glb without it).
        viewer=viewer_bundle(),
        reanimation=lambda wildcards, input: f"--video {input.reanimation}" if "reanimation" in input.keys() else "",
        code=code_version("report"),
    log:
        "logs/report/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "lab4d report --title {wildcards.dataset} --out {output} --video {input.reference} "
        "--video {input.turntable} {params.reanimation} --glb {input.glb} --curves {input.curves} --preview {input.preview} "
        "--metrics {input.metrics} --link {params.export} --link {input.motion} > {log} 2>&1"
