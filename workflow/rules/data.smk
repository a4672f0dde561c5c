# Data stage: every dataset ends as data/{dataset}/manifest.json (the one input
# of later stages), then a preview image for the report. The dataset YAML is a params value
# here, not an input: only its source section (source_settings) decides whether data is stale.


rule synthesize:
    input:
        asset=synth_asset,
    output:
        "data/{dataset}/manifest.json",
    params:
        config=dataset_config,
        source=source_settings,
        code=code_version("synth"),
    log:
        "logs/synthesize/{dataset}.log",
    benchmark:
        "logs/benchmarks/synthesize/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternation(datasets_with_source("synthetic")),
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../environment.yml"
    shell:
        "lab4d synth --config {params.config} --out data/{wildcards.dataset} > {log} 2>&1"


# A url source's zip is downloaded (resuming an interrupted transfer), checked and unpacked. Only the
# url is a params value, and no code version: pinning the printed checksum or a new lab4d_core must not
# download gigabytes again (`lab4d download` reads the checksum from the YAML). A local rule: a
# cluster's compute nodes may have no internet access.
rule download:
    output:
        directory("data/{dataset}/download"),
    params:
        config=dataset_config,
        url=source_url,
    log:
        "logs/download/{dataset}.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("url")),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "lab4d download --config {params.config} --out {output} > {log} 2>&1"


# An existing processed database (or a url source's download) is validated in place; nothing is copied.
rule link_database:
    input:
        downloaded_database,
    output:
        "data/{dataset}/manifest.json",
    params:
        source=source_settings,
        root=source_path,
        collection=source_collection,
        options=link_options,
        code=code_version("link"),
    log:
        "logs/link_database/{dataset}.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("path") + datasets_with_source("url")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d link --root {params.root:q} --collection {params.collection} --out {output} {params.options} > {log} 2>&1"


# Your own videos: five stages per video in data/{dataset}/preprocess/{video}/, then one gather into
# lab4d's layout. Each stage's params are only the settings that decide its output (stage_settings), so a
# new video preprocesses only itself and editing one video's prompt reruns only that video's masks onwards.
rule preprocess_frames:
    input:
        video_path,
    output:
        directory("data/{dataset}/preprocess/{video}/frames"),
    params:
        config=dataset_config,
        settings=stage_settings("frames"),
        code=code_version("preprocess"),
    log:
        "logs/preprocess/{dataset}/{video}/frames.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("videos")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d preprocess frames --config {params.config} --out data/{wildcards.dataset} "
        "--video {wildcards.video} > {log} 2>&1"


rule preprocess_masks:
    input:
        "data/{dataset}/preprocess/{video}/frames",
        mask_inputs,
    output:
        "data/{dataset}/preprocess/{video}/masks.npz",
    params:
        config=dataset_config,
        settings=stage_settings("masks"),
        code=code_version("preprocess"),
    log:
        "logs/preprocess/{dataset}/{video}/masks.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("videos")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d preprocess masks --config {params.config} --out data/{wildcards.dataset} "
        "--video {wildcards.video} > {log} 2>&1"


rule preprocess_crops:
    input:
        "data/{dataset}/preprocess/{video}/frames",
        "data/{dataset}/preprocess/{video}/masks.npz",
    output:
        directory("data/{dataset}/preprocess/{video}/crop"),
    params:
        config=dataset_config,
        settings=stage_settings("crops"),
        code=code_version("preprocess"),
    log:
        "logs/preprocess/{dataset}/{video}/crops.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("videos")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d preprocess crops --config {params.config} --out data/{wildcards.dataset} "
        "--video {wildcards.video} > {log} 2>&1"


rule preprocess_flow:
    input:
        "data/{dataset}/preprocess/{video}/frames",
        "data/{dataset}/preprocess/{video}/crop",
    output:
        directory("data/{dataset}/preprocess/{video}/flow"),
    params:
        config=dataset_config,
        settings=stage_settings("flow"),
        code=code_version("preprocess"),
    log:
        "logs/preprocess/{dataset}/{video}/flow.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("videos")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d preprocess flow --config {params.config} --out data/{wildcards.dataset} "
        "--video {wildcards.video} > {log} 2>&1"


rule preprocess_cameras:
    input:
        "data/{dataset}/preprocess/{video}/frames",
        "data/{dataset}/preprocess/{video}/masks.npz",
    output:
        "data/{dataset}/preprocess/{video}/cameras.npz",
    params:
        config=dataset_config,
        settings=stage_settings("cameras"),
        code=code_version("preprocess"),
    log:
        "logs/preprocess/{dataset}/{video}/cameras.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("videos")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d preprocess cameras --config {params.config} --out data/{wildcards.dataset} "
        "--video {wildcards.video} > {log} 2>&1"


rule gather_videos:
    input:
        preprocessed_videos,
    output:
        "data/{dataset}/manifest.json",
    params:
        config=dataset_config,
        code=code_version("preprocess"),
    log:
        "logs/preprocess/{dataset}/gather.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("videos")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d preprocess gather --config {params.config} --out data/{wildcards.dataset} > {log} 2>&1"


rule preview:
    input:
        "data/{dataset}/manifest.json",
    output:
        report(
            "results/{dataset}/data-preview.png",
            caption="../report/preview.rst",
            category="Data",
        ),
    params:
        code=code_version("preview"),
    log:
        "logs/preview/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "lab4d preview --manifest {input} --out {output} > {log} 2>&1"
