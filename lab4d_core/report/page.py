"""``lab4d report``: one self-contained HTML page of a dataset's results.

Everything is inlined (videos, the animated glb, images and the 3D viewer's script), so the
page works offline, from ``file://`` and after being mailed or copied anywhere: browsers refuse
``fetch`` of a neighbouring file from a ``file://`` page, which a viewer loading ``animated.glb``
by its path would need. The 3D viewer is Google's ``<model-viewer>`` web component (three.js
inside), from the npm registry at setup time (``make setup``), never from the network at view time.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab4d_core import __version__
from lab4d_core.errors import Lab4dError
from lab4d_core.utils.io import atomic_write_text

VIEWER_PACKAGE = "@google/model-viewer@4.4.0"
"""The npm package whose single-file bundle (three.js included) draws the glb."""
VIEWER_BUNDLE = Path("node_modules/@google/model-viewer/dist/model-viewer-umd.min.js")
VIEWER_BACKGROUND = "#1d2733"
"""The viewer's backdrop; the browser test counts pixels that differ from it."""

_MIME = {".mp4": "video/mp4", ".png": "image/png", ".glb": "model/gltf-binary"}


def viewer_script() -> Path | None:
    """The model-viewer bundle: ``$LAB4D_MODEL_VIEWER``, else ``<venv>/node/`` where ``make setup`` puts it."""
    if os.environ.get("LAB4D_MODEL_VIEWER"):
        path = Path(os.environ["LAB4D_MODEL_VIEWER"])
        if not path.is_file():
            raise Lab4dError(f"LAB4D_MODEL_VIEWER={path}: no such file; point it at {VIEWER_BUNDLE.name}")
        return path
    path = Path(sys.prefix) / "node" / VIEWER_BUNDLE
    return path if path.is_file() else None


@dataclass
class ReportInputs:
    """What a results page shows; every path is optional but the title."""

    title: str
    videos: list[Path] = field(default_factory=list)
    glb: Path | None = None
    curves: Path | None = None
    metrics: Path | None = None
    preview: Path | None = None
    links: list[Path] = field(default_factory=list)
    """Files offered for download by a relative link (they are not inlined), e.g. the export folder's."""


def _data_uri(path: Path) -> str:
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise Lab4dError(f"{path}: cannot inline a {path.suffix or 'suffix-less'} file (expected {', '.join(_MIME)})")
    return f"data:{mime};base64,{base64.b64encode(_read(path)).decode()}"


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise Lab4dError(f"{path}: cannot read it ({error.strerror}); run the stage that makes it first") from None


def _inline_script(path: Path) -> str:
    script = _read(path).decode()
    # The map is not shipped; "</script" would end the inline element early.
    script = "\n".join(line for line in script.splitlines() if not line.startswith("//# sourceMappingURL="))
    return script.replace("</script", "<\\/script")


def _load_metrics(path: Path) -> dict:
    try:
        return json.loads(_read(path))
    except json.JSONDecodeError as error:
        raise Lab4dError(f"{path}: not valid JSON ({error}); rerun `lab4d evaluate`") from None


def _metrics_section(metrics: dict, path: Path) -> str:
    parts = []
    views = metrics.get("views")
    if views:
        videos = views.get("videos", {})
        total = {**views, "frames": sum(v.get("frames", 0) for v in videos.values()) or ""}
        rows = [*videos.items(), ("all frames", total)]
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{v['mask_iou']:.3f}</td><td>{v['psnr']:.2f}</td>"
            f"<td>{v.get('frames', '')}</td></tr>"
            for name, v in rows
        )
        parts.append(
            f"<h3>Training views at {views.get('resolution', '?')}&sup2;</h3><table><tr><th>video</th>"
            f"<th>mask IoU</th><th>masked PSNR (dB)</th><th>frames</th></tr>{body}</table>"
        )
    meshes = metrics.get("meshes")
    if meshes:
        names = {
            "cd": "Chamfer distance (scene units)",
            "fscore@10%bbox": "F-score at 10% of the size",
            "fscore@5%bbox": "F-score at 5%",
            "fscore@2%bbox": "F-score at 2%",
        }
        mean = meshes.get("mean", {})
        body = "".join(
            f"<tr><td>{name}</td><td>{mean[key]:.4f}</td></tr>" for key, name in names.items() if key in mean
        )
        parts.append(
            f"<h3>Meshes of video 0 against ground truth ({html.escape(str(meshes.get('protocol')))}, "
            f"{html.escape(str(meshes.get('points')))} samples, mean over frames)</h3>"
            f"<table><tr><th>metric</th><th>value</th></tr>{body}</table>"
        )
    parts += _category_tables(metrics)
    consistency = metrics.get("consistency")
    if consistency:
        parts.append(_consistency_table(consistency))
    if not parts:
        raise Lab4dError(f"{path}: no 'views', 'meshes' or 'consistency' metrics; rerun `lab4d evaluate`")
    return "".join(parts)


def _category_tables(metrics: dict) -> list[str]:
    """Every video's meshes, the reanimations and the bone lengths against ground truth, where evaluated."""
    parts = []
    video_meshes = metrics.get("video_meshes")
    if video_meshes:
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{v['fscore@5%bbox']:.3f}</td><td>{v['fscore@10%bbox']:.3f}</td>"
            f"<td>{v['frames']}</td></tr>"
            for name, v in video_meshes["videos"].items()
        )
        parts.append(
            "<h3>Every video's meshes against ground truth (Sim(3), surface samples)</h3><table><tr><th>video</th>"
            f"<th>F-score at 5% of the size</th><th>at 10%</th><th>frames</th></tr>{body}</table>"
        )
    reanimation = metrics.get("reanimation")
    if reanimation:
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{v['mask_iou']:.3f}</td><td>{v['fscore@5%bbox']:.3f}</td>"
            f"<td>{v['fscore@10%bbox']:.3f}</td></tr>"
            for name, v in reanimation.items()
        )
        parts.append(
            "<h3>Reanimation against the true one (video A's motion on video B's individual)</h3><table><tr>"
            f"<th>A-to-B</th><th>mask IoU</th><th>meshes F-score at 5%</th><th>at 10%</th></tr>{body}</table>"
        )
    bones = metrics.get("bone_lengths")
    if bones:
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{v['leg_length']['predicted']:.3f} / {v['leg_length']['true']:.3f}</td>"
            f"<td>{v['arm_length']['predicted']:.3f} / {v['arm_length']['true']:.3f}</td></tr>"
            for name, v in bones["videos"].items()
        )
        verdict = " and ".join(
            f"{limb}s {'rank' if bones[f'{limb}_order_matches'] else 'do not rank'} as the truth"
            for limb in ("leg", "arm")
        )
        parts.append(
            "<h3>Bone lengths (after one scale)</h3><table><tr><th>video</th><th>legs, learned / true</th>"
            f"<th>arms, learned / true</th></tr>{body}</table><p class=note>Median error per bone "
            f"{100 * bones['median_relative_error']:.1f}%; {verdict}.</p>"
        )
    return parts


def _consistency_table(consistency: dict) -> str:
    """Per video and overall: how far the deformation turns the body, how alike nearby frames' shapes
    are, and the verdict (see :mod:`lab4d_core.eval.consistency`)."""
    limits = consistency["limits"]
    rows = [*consistency["videos"].items(), ("all frames", consistency)]
    body = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_cell(v['deformation_rotation_median'], 1)}</td>"
        f"<td>{_cell(v['deformation_rotation_p90'], 1)}</td><td>{_cell(v['neighbour_fscore_median'], 3)}</td>"
        f"<td>{_cell(v['neighbour_fscore_p10'], 3)}</td>"
        f"<td class={'ok' if v['consistent'] else 'bad'}>{'yes' if v['consistent'] else 'NO'}</td></tr>"
        for name, v in rows
    )
    return (
        "<h3>Consistency across views (needs no ground truth)</h3>"
        "<table><tr><th>video</th><th>body rotation by the deformation, median (&deg;)</th>"
        f"<th>90th percentile (limit {limits['deformation_rotation_p90']:g})</th>"
        f"<th>neighbour F-score, median</th><th>10th percentile (limit {limits['neighbour_fscore_p10']:g})</th>"
        f"<th>consistent</th></tr>{body}</table>"
        "<p class=note>Rest-shape samples carried by the deformation into each frame, before the root pose. "
        "Rotation: of the best rigid fit from the rest shape, per frame; a healthy model articulates, so its "
        "body turns a few degrees. Neighbour F-score: between frames a few apart, within "
        f"{100 * consistency['fscore_fraction']:g}% of the rest shape's largest side; low when the shape jumps.</p>"
    )


def _consistency_banner(metrics: dict) -> str:
    """A warning at the top of the page naming every inconsistent video, or nothing."""
    warnings = metrics.get("consistency", {}).get("warnings", [])
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in warnings)
    return f"<div class=alert role=alert><strong>Inconsistent across views</strong><ul>{items}</ul></div>"


def _cell(value: float | None, digits: int) -> str:
    """A number, or a dash where there is none: a one-frame video has no frame pairs, hence no
    F-score, and a model without a surface has nothing to score."""
    return "&ndash;" if value is None else f"{value:.{digits}f}"


def build_page(inputs: ReportInputs, out_dir: Path, script: Path | None) -> str:
    """The HTML text; links are relative to ``out_dir``, where the page will live."""
    sections = []
    if inputs.glb is not None:
        if script is None:
            viewer = (
                "<p class=warn>The 3D viewer is not bundled: <code>make setup</code> installs it "
                f"(<code>npm install --prefix .venv/node {VIEWER_PACKAGE}</code>); then rerun the report. "
                f"The model itself: <a href='{_relative(inputs.glb, out_dir)}'>{inputs.glb.name}</a>.</p>"
            )
        else:
            viewer = (
                f"<model-viewer id=viewer src='{_data_uri(inputs.glb)}' alt='animated reconstruction' autoplay "
                "camera-controls interaction-prompt=none shadow-intensity=0.6 exposure=1.1></model-viewer>"
                "<p class=note>Drag to turn, scroll to zoom. The skinned, animated glb opens in Blender, "
                "three.js or a game engine as it is.</p>"
            )
        sections.append(f"<section><h2>Animated model ({html.escape(inputs.glb.name)})</h2>{viewer}</section>")
    if inputs.videos:
        clips = "".join(
            f"<figure><video src='{_data_uri(path)}' autoplay loop muted controls playsinline></video>"
            f"<figcaption>{html.escape(path.name)}: rgb | mask | depth | normal | canonical xyz</figcaption></figure>"
            for path in inputs.videos
        )
        sections.append(f"<section><h2>Renders</h2>{clips}</section>")
    metrics = None if inputs.metrics is None else _load_metrics(inputs.metrics)
    if metrics is not None:
        sections.append(f"<section><h2>Metrics</h2>{_metrics_section(metrics, inputs.metrics)}</section>")
    if inputs.curves is not None:
        sections.append(
            f"<section><h2>Training</h2><img class=plot src='{_data_uri(inputs.curves)}' alt='training losses'></section>"
        )
    if inputs.preview is not None:
        sections.append(
            f"<section><h2>Input data</h2><img class=data src='{_data_uri(inputs.preview)}' alt='data preview'></section>"
        )
    if inputs.links:
        items = "".join(
            f"<li><a href='{_relative(path, out_dir)}'>{html.escape(path.name)}</a></li>" for path in inputs.links
        )
        sections.append(f"<section><h2>Files</h2><ul>{items}</ul></section>")
    head_script = f"<script>{_inline_script(script)}</script>" if script is not None and inputs.glb else ""
    title = html.escape(inputs.title)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1">
<title>{title} - lab4d-workflow</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em; color: #1b1f24; }}
h1 {{ margin-bottom: 0; }} .sub {{ color: #57606a; margin-top: 0.2em; }}
model-viewer {{ display: block; width: 640px; height: 480px; max-width: 100%; background-color: {VIEWER_BACKGROUND}; }}
video {{ width: 100%; image-rendering: pixelated; }} img.plot {{ max-width: 100%; }} img.data {{ max-width: 640px; }}
figure {{ margin: 0 0 1em 0; }} figcaption, .note {{ color: #57606a; font-size: 0.9em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #d0d7de; padding: 0.25em 0.8em; text-align: right; }} td:first-child {{ text-align: left; }}
.warn {{ background: #fff8c5; padding: 0.6em; }}
.alert {{ background: #ffebe9; border: 2px solid #cf222e; color: #82071e; padding: 0.6em 1em; margin: 1em 0; }}
td.ok {{ color: #1a7f37; }} td.bad {{ color: #cf222e; font-weight: bold; }}
</style>{head_script}</head>
<body><h1>{title}</h1><p class=sub>lab4d-workflow {__version__}, {stamp}</p>
{_consistency_banner(metrics or {})}{"".join(sections)}
</body></html>
"""


def _relative(path: Path, out_dir: Path) -> str:
    return html.escape(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve()), quote=True)


def write_report(inputs: ReportInputs, out: Path) -> Path | None:
    """Write the page to ``out`` atomically; returns the viewer bundle used (None: not installed)."""
    script = viewer_script()
    atomic_write_text(out, build_page(inputs, Path(out).parent, script))
    return script
