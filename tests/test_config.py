import argparse

import pytest

from lab4d_core.config import (
    DatasetConfig,
    SynthConfig,
    add_arguments,
    field_docs,
    from_dict,
    given_arguments,
    json_schema,
    load_dataset_config,
)
from lab4d_core.errors import Lab4dError


def test_every_config_field_has_a_docstring():
    for cls in (SynthConfig,):
        docs = field_docs(cls)
        assert set(docs) == set(cls.__dataclass_fields__), "each field needs a docstring: it is the CLI help"
        assert "glTF" in docs["character"]


def test_unknown_key_is_an_error_naming_it_and_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("source:\n  synthetic:\n    num_video: 3\n")
    with pytest.raises(
        Lab4dError, match=r"bad.yaml.source.synthetic: unknown key 'num_video'; valid keys are .*num_videos"
    ):
        load_dataset_config(path)


def test_types_and_choices_are_checked():
    with pytest.raises(Lab4dError, match=r"num_frames: 'many' is not int \| list\[int\]"):
        from_dict(SynthConfig, {"num_frames": "many"})
    with pytest.raises(Lab4dError, match=r"num_frames\[1\] is 5: each video needs at least 9 frames"):
        from_dict(SynthConfig, {"num_frames": [48, 5]})
    assert from_dict(SynthConfig, {"num_videos": 3, "num_frames": [9, 12]}).frame_counts == [9, 12, 9]
    with pytest.raises(Lab4dError, match="'dragon' is not one of 'quad', 'human', 'asset'"):
        from_dict(SynthConfig, {"character": "dragon"})
    with pytest.raises(Lab4dError, match="exactly one of synthetic, path"):
        from_dict(DatasetConfig, {"source": {}})
    assert from_dict(SynthConfig, {"focal": 2}).focal == 2.0
    with pytest.raises(Lab4dError, match=r"beta_anneal must be in \(0, 1\]"):
        from_dict(DatasetConfig, {"source": {"path": "x"}, "train": {"beta_anneal": 2.0}})


def test_valid_yaml_round_trips(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("source:\n  synthetic:\n    character: human\n    motions: [wave]\n")
    cfg = load_dataset_config(path)
    assert cfg.source.synthetic.character == "human" and cfg.source.synthetic.motions == ["wave"]


def test_cli_flags_come_from_fields_and_only_given_ones_override():
    parser = argparse.ArgumentParser()
    add_arguments(parser, SynthConfig)
    args = parser.parse_args(["--num-frames", "20", "--no-single-inst", "--motions", "walk", "wave"])
    assert given_arguments(args, SynthConfig) == {"num_frames": 20, "single_inst": False, "motions": ["walk", "wave"]}
    assert given_arguments(parser.parse_args(["--reanimate", "0,3", "3,0"]), SynthConfig) == {
        "reanimate": [[0, 3], [3, 0]]
    }
    assert "Frames per video" in parser.format_help()


def test_schema_rejects_unknown_keys_and_documents_fields():
    schema = json_schema(DatasetConfig)
    synthetic = schema["properties"]["source"]["properties"]["synthetic"]["anyOf"][0]
    assert synthetic["additionalProperties"] is False
    num_frames = synthetic["properties"]["num_frames"]
    assert num_frames["anyOf"] == [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]
    assert num_frames["default"] == 48
    assert num_frames["description"].startswith("Frames per video")


def test_a_videos_source_picks_its_segmenter_and_rejects_what_does_not_fit():
    def source(**settings):
        return from_dict(DatasetConfig, {"source": settings}).source

    assert source(videos="v", masks="m").mask_method == "given"
    assert source(videos="v", category="human").mask_method == "mediapipe"
    assert source(videos="v", prompt=[{"box": [1, 2, 3, 4]}]).mask_method == "track"
    assert source(videos=["a.mp4", "b.mp4"]).mask_method == "motion"
    with pytest.raises(Lab4dError, match="prompt belong to a videos source"):
        source(path="db", prompt=[{"box": [1, 2, 3, 4]}])
    with pytest.raises(Lab4dError, match="segmenter track needs prompt"):
        source(videos="v", segmenter="track")
    with pytest.raises(Lab4dError, match="segmenter onnx needs onnx"):
        source(videos="v", segmenter="onnx")
    with pytest.raises(Lab4dError, match=r"prompt\[0\].*x0 < x1"):
        source(videos="v", prompt=[{"box": [5, 2, 3, 4]}])
    with pytest.raises(Lab4dError, match="max_frames must be at least 9"):
        source(videos="v", max_frames=4)
