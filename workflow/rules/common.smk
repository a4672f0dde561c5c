# Config loading and validation, wildcard constraints and input functions.
# No rules here: the rules live in one file per stage (data.smk, ...).
import json
import re
from pathlib import Path

from jsonschema.exceptions import ValidationError, best_match
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from lab4d_core.config import load_dataset_config, load_yaml, to_dict
from lab4d_core.errors import Lab4dError
from lab4d_core.tools.fingerprint import fingerprint

# Top-level config: unknown keys are errors, defaults are filled in.
validate(config, "../schemas/config.schema.yaml")


def schema_error(error):
    """The most specific schema violation behind snakemake's validate() error, in one line."""
    cause = error.__context__
    if not isinstance(cause, ValidationError):
        return str(error)
    best = best_match([cause])
    return f"{'.'.join(map(str, best.absolute_path)) or 'top level'}: {best.message}"


def load_datasets(folder):
    """Every <name>.yaml in ``folder`` as {name: (path, DatasetConfig)}.

    Each file is checked against the dataset schema (unknown keys, types) and
    then by lab4d_core's typed loader (e.g. exactly one source); errors name the file.
    """
    datasets = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            # set_default=False: snakemake's default filling breaks on `anyOf: [object, null]`.
            validate(load_yaml(path), "../schemas/dataset.schema.yaml", set_default=False)
            datasets[path.stem] = (str(path), load_dataset_config(path))
        except WorkflowError as error:
            raise WorkflowError(f"{path}: {schema_error(error)}") from None
        except Lab4dError as error:  # its message starts with the path
            raise WorkflowError(str(error)) from None
    return datasets


DATASETS = load_datasets(config["dataset_configs"])

_unknown = [name for name in config["datasets"] if name not in DATASETS]
if _unknown:
    raise WorkflowError(
        f"config datasets {_unknown} have no <name>.yaml in "
        f"{Path(config['dataset_configs']).resolve()}; "
        f"available: {', '.join(DATASETS) or 'none'}"
    )


def alternation(names):
    """Regex matching exactly one of ``names`` (never matching when empty)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


def datasets_with_source(kind):
    """Names of the datasets whose source is ``kind`` ("synthetic", "path", "url" or "videos")."""
    return [name for name, (_, cfg) in DATASETS.items() if getattr(cfg.source, kind) is not None]


wildcard_constraints:
    dataset=alternation(DATASETS),
    inst=r"\d+",
    video=r"[A-Za-z0-9._-]+",
    motion=r"\d+",


def dataset_config(wildcards):
    """config/datasets/<dataset>.yaml of a job."""
    return DATASETS[wildcards.dataset][0]


def train_gpus(wildcards):
    """GPUs a dataset's training asks for (its train.ngpu); Snakemake's --resources gpu=N caps it."""
    return DATASETS[wildcards.dataset][1].train.ngpu


def dataset_source(wildcards):
    return DATASETS[wildcards.dataset][1].source


def source_settings(wildcards):
    """The dataset YAML's source section as canonical JSON: a params value, so that editing that
    section reruns the data stage and editing another (train:, model:) does not. Without the
    checksum: pinning the one a download printed changes no data, so it must not retrain."""
    settings = to_dict(dataset_source(wildcards))
    del settings["sha256"]
    return json.dumps(settings, sort_keys=True)


def training_settings(wildcards):
    """The dataset YAML's model and train sections as canonical JSON: a params value of the train rule."""
    cfg = to_dict(DATASETS[wildcards.dataset][1])
    return json.dumps({"model": cfg["model"], "train": cfg["train"]}, sort_keys=True)


def dataset_videos(dataset):
    """{name: path} of a videos dataset's videos, read when a job of that dataset needs them (so that a missing
    folder stops only that dataset's jobs, with a message naming it)."""
    from lab4d_core.preprocess.videos import find_videos

    try:
        return find_videos(DATASETS[dataset][1].source)
    except Lab4dError as error:
        raise WorkflowError(f"{DATASETS[dataset][0]}: {error}") from None


def video_path(wildcards):
    """The video file (or folder of frames) a frames job decodes."""
    videos = dataset_videos(wildcards.dataset)
    if wildcards.video not in videos:
        raise WorkflowError(
            f"{DATASETS[wildcards.dataset][0]}: no video named {wildcards.video!r}; the videos are {', '.join(videos)}"
        )
    return str(videos[wildcards.video])


def stage_settings(stage):
    """A params value: the settings that decide one preprocessing stage of one video, as canonical JSON, so
    that adding a video or editing another video's prompt reruns nothing of this one."""
    from lab4d_core.preprocess import videos

    def settings(wildcards):
        try:
            values = videos.stage_settings(dataset_source(wildcards), wildcards.video, stage)
        except Lab4dError as error:
            raise WorkflowError(f"{DATASETS[wildcards.dataset][0]}: {error}") from None
        return json.dumps(values, sort_keys=True)

    return settings


def mask_inputs(wildcards):
    """Files a masks job reads besides the frames: the user's masks folder or onnx model."""
    source = dataset_source(wildcards)
    values = json.loads(stage_settings("masks")(wildcards))
    inputs = [values["masks"]] if "masks" in values else []
    return inputs + ([source.onnx.model] if source.mask_method == "onnx" else [])


def preprocessed_videos(wildcards):
    """Every per-video output the gather of a videos dataset reads."""
    work = f"data/{wildcards.dataset}/preprocess"
    return [
        f"{work}/{name}/{part}"
        for name in dataset_videos(wildcards.dataset)
        for part in ("frames", "masks.npz", "crop", "flow", "cameras.npz")
    ]


def synth_asset(wildcards):
    """The glTF asset a synthetic dataset renders, if any (so edits to it rerun synthesis)."""
    asset = dataset_source(wildcards).synthetic.asset
    return [asset] if asset else []


def database_root(dataset):
    """Folder that holds the database/ of a path or url dataset: the path, or where the download unpacks."""
    source = DATASETS[dataset][1].source
    return source.path if source.url is None else f"data/{dataset}/download"


def source_path(wildcards):
    """Root of an existing or downloaded processed database, relative to the working directory."""
    return database_root(wildcards.dataset)


def downloaded_database(wildcards):
    """The unpacked download that a url dataset links (nothing for a path dataset: it is used in place)."""
    return [database_root(wildcards.dataset)] if dataset_source(wildcards).url is not None else []


def source_url(wildcards):
    """A url dataset's address: a params value, so that editing it downloads again (and editing the
    checksum, collection or train_res does not)."""
    return dataset_source(wildcards).url


def source_collection(wildcards):
    return dataset_source(wildcards).collection or wildcards.dataset


def link_options(wildcards):
    """`lab4d link` flags from the source: --train-res when given (else the resolution on disk)."""
    train_res = dataset_source(wildcards).train_res
    return f"--train-res {train_res}" if train_res is not None else ""


def code_version(command):
    """A params value that reruns a rule's jobs when the lab4d_core code that `lab4d <command>` runs changes.

    Snakemake's code trigger sees only the rule's own text, not the package it calls. The fingerprint
    (lab4d_core/tools/fingerprint.py) covers exactly the modules the command imports, so an edit to the
    renderer reruns renders and not training, and an edit to a comment or docstring reruns nothing. A rule
    passes the subcommand its shell runs, e.g. `code=code_version("render")` for `lab4d render ...`;
    `python -m lab4d_core.tools.fingerprint <command>` lists what that covers.
    """
    return fingerprint(command)


def viewer_bundle():
    """The results page's 3D viewer script ("" when not installed), a params value of the report rule."""
    from lab4d_core.report.page import viewer_script

    return str(viewer_script() or "")


def report_inputs(wildcards):
    return dataset_results(wildcards.dataset)


def dataset_results(dataset):
    """What results/{dataset}/report.html shows: video 0's renders and export, the training
    curves, the data preview, the metrics (against ground truth where there is one) and, for a
    category model, video 0's motion on the last video's individual."""
    results = f"results/{dataset}"
    files = {
        "reference": f"{results}/reference-0.mp4",
        "turntable": f"{results}/turntable.mp4",
        "glb": f"{results}/export/0/animated.glb",
        "motion": f"{results}/export/0/motion.json",
        "curves": f"{results}/train/curves.png",
        "preview": f"{results}/data-preview.png",
        "metrics": f"{results}/eval/metrics.json",
    }
    reanimation = reanimation_video(dataset)
    return {**files, "reanimation": reanimation} if reanimation else files


def reanimation_video(dataset):
    """results/{dataset}/reanimate/0-to-<last video>.mp4 for a skeleton model with one body per video
    (single_inst: false), else None. The videos are counted from the synthetic config, or from the
    database config of a path or url source once it exists (a url source's once it is downloaded)."""
    cfg = DATASETS[dataset][1]
    if cfg.model.single_inst or "skel-" not in cfg.model.fg_motion:
        return None
    if cfg.source.synthetic is not None:
        count = cfg.source.synthetic.num_videos
    elif cfg.source.videos is not None:
        count = len(dataset_videos(dataset))
    else:
        database = Path(database_root(dataset)) / "database" / "configs" / f"{cfg.source.collection or dataset}.config"
        count = database.read_text().count("[data_") if database.exists() else 0
    return f"results/{dataset}/reanimate/0-to-{count - 1}.mp4" if count > 1 else None


def final_outputs():
    """Targets of the default run, per dataset in config["datasets"]: the results page and,
    named so that a dry run lists them, everything it shows."""
    targets = []
    for dataset in config["datasets"]:
        page = f"results/{dataset}/report.html"
        targets += [page, *dataset_results(dataset).values()]
    return targets
