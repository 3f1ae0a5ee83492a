"""Training curves: train vs validation accuracy and loss, as a PNG."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from muses.errors import MusesError


class PlotError(MusesError):
    """Nothing to plot."""


def unfrozen_blocks(record: dict) -> int:
    # Model files written before the rename call it "unfrozen".
    return record.get("unfrozen_blocks", record.get("unfrozen", 0))


def plot_performance(history: list[dict], filepath: str | Path) -> Path:
    """Write the curves of ``history`` (one dict per epoch) to ``filepath`` (a PNG; the caller
    knows the project, usually ``project.plots_dir / f"{name}_performance.png"``) and return it.
    A dashed line marks where fine-tuning starts.
    """
    if not history:
        raise PlotError("no training history to plot: train the model first")
    filepath = Path(filepath)
    filepath.parent.mkdir(parents=True, exist_ok=True)
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(11, 4))  # a bare Figure, not pyplot: no global backend or figure state
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for split, style in (("train", "-"), ("val", "--")):
            values = [h.get(f"{split}_{metric}") for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker=".", label=split)
        starts = [h["epoch"] for prev, h in zip(history, history[1:]) if unfrozen_blocks(h) != unfrozen_blocks(prev)]
        for x in starts:
            ax.axvline(x - 0.5, color="grey", linestyle=":", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(filepath, dpi=100)
    return filepath
