"""The RISE plot: accuracy at each sequential turn, one line per model or iteration."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first


def plot_accuracy(curves: dict[str, list[float]], path: Path, title: str) -> None:
    """Save a line plot of accuracy (%) against turn for each named curve."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, accuracy in curves.items():
        ax.plot(range(1, len(accuracy) + 1), [100 * a for a in accuracy], marker="o", label=name)
    ax.set(xlabel="turn", ylabel="accuracy (%)", title=f"accuracy per turn, {title}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
