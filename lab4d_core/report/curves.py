"""Training curves: the trainer's TensorBoard scalars, read back and plotted as one PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from lab4d_core.errors import Lab4dError
from lab4d_core.utils.io import atomic_write


def read_scalars(logdir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps, values)} of every scalar in a TensorBoard log folder, one value per step.

    Each training session writes its own event file. A resumed session restarts at its
    checkpoint's step s, so it replaces whatever earlier files logged at steps >= s (the
    steps an interrupted session ran past its last checkpoint).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = Path(logdir)
    files = list(logdir.glob("events.out.tfevents.*"))
    if not files:
        raise Lab4dError(f"{logdir}: no TensorBoard event files; it is written by `lab4d train` (train/tensorboard/)")
    sessions = []
    for path in files:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
        accumulator.Reload()
        try:  # in the order the sessions started (file names carry whole seconds only)
            sessions.append((accumulator.FirstEventTimestamp(), accumulator))
        except ValueError:  # an empty file: a session killed before its first event
            continue
    merged: dict[str, dict[int, float]] = {}
    for _, accumulator in sorted(sessions, key=lambda session: session[0]):
        for tag in accumulator.Tags()["scalars"]:
            events = accumulator.Scalars(tag)
            if not events:
                continue
            restart = min(event.step for event in events)
            kept = {step: value for step, value in merged.get(tag, {}).items() if step < restart}
            merged[tag] = kept | {event.step: event.value for event in events}
    return {
        tag: (np.array(sorted(values)), np.array([values[step] for step in sorted(values)], dtype=np.float64))
        for tag, values in merged.items()
    }


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points, shrinking at the ends (no lag, no padding bias)."""
    if window <= 1 or len(values) < 3:
        return values
    kernel = np.ones(min(window, len(values)))
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def plot_losses(scalars: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """PNG of every ``loss/*`` curve against the step, log scale, raw values faint under a moving average."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    losses = {tag.split("/", 1)[1]: curve for tag, curve in scalars.items() if tag.startswith("loss/")}
    if not losses:
        raise Lab4dError(f"no loss/* scalars to plot (tags: {', '.join(scalars) or 'none'})")
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    colours = plt.get_cmap("tab10")
    for i, (name, (steps, values)) in enumerate(sorted(losses.items(), key=lambda item: item[0] != "total")):
        positive = values > 0
        if not positive.any():
            continue
        steps, values = steps[positive], values[positive]
        colour = "black" if name == "total" else colours(i % 10)
        window = max(1, len(values) // 30)
        axis.plot(steps, values, color=colour, alpha=0.2, linewidth=0.8)
        axis.plot(steps, smooth(values, window), color=colour, linewidth=2 if name == "total" else 1.4, label=name)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("loss (unweighted terms; total is weighted)")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="upper right", fontsize="small", ncol=2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def write_curves(logdir: Path, out: Path, title: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Plot a training run's losses to ``out`` (PNG, written atomically); returns the scalars."""
    scalars = read_scalars(logdir)
    steps = max(int(steps[-1]) for steps, _ in scalars.values())
    png = plot_losses(scalars, f"{title or Path(logdir).parent.name}: {steps} steps")
    atomic_write(out, lambda handle: handle.write(png))
    return scalars
