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
        code=code_version(),
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


# An existing processed database is validated in place; nothing is copied.
rule link_database:
    output:
        "data/{dataset}/manifest.json",
    params:
        source=source_settings,
        root=source_path,
        collection=source_collection,
        code=code_version(),
    log:
        "logs/link_database/{dataset}.log",
    wildcard_constraints:
        dataset=alternation(datasets_with_source("path")),
    conda:
        "../../environment.yml"
    shell:
        "lab4d link --root {params.root:q} --collection {params.collection} --out {output} > {log} 2>&1"


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
        code=code_version(),
    log:
        "logs/preview/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "lab4d preview --manifest {input} --out {output} > {log} 2>&1"
