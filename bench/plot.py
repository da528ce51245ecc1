"""PNG plots of a run: RPO over time, with the guest's write rate on a second axis.

matplotlib with the non-interactive Agg backend (no display, no warnings); imported only
when a plot is drawn, so the rest of ``bench`` works without matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdp.source.rpo import SAMPLE_INTERVAL_S


def write_rates(samples: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """(t, MB/s) between consecutive [t_s, rpo_s, bytes] samples."""
    out = []
    for (t0, _, b0), (t1, _, b1) in zip(samples, samples[1:], strict=False):
        dt = max(t1 - t0, SAMPLE_INTERVAL_S / 10)
        out.append((t1, (b1 - b0) / dt / 1e6))
    return out


def rpo_plot(
    samples: Sequence[Sequence[float]],
    path: str,
    title: str,
    sla_s: float = 1.0,
    predicted: Sequence[tuple[float, float]] = (),
) -> str:
    """Draw RPO (left axis) and write rate (right axis) over time into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    try:
        ax.plot([s[0] for s in samples], [s[1] for s in samples], color="tab:red",
                label="RPO measured (s)")  # fmt: skip
        if predicted:
            ax.plot([p[0] for p in predicted], [p[1] for p in predicted], color="tab:purple",
                    linestyle="--", label="RPO predicted (s)")  # fmt: skip
        ax.axhline(sla_s, color="grey", linestyle=":", label=f"SLA {sla_s:g} s")
        ax.set_xlabel("time since the source started (s)")
        ax.set_ylabel("RPO (s)")
        ax.set_ylim(bottom=0)
        rates = write_rates(samples)
        ax2 = ax.twinx()
        ax2.plot([r[0] for r in rates], [r[1] for r in rates], color="tab:blue", alpha=0.5,
                 label="guest writes (MB/s)")  # fmt: skip
        ax2.set_ylabel("guest write rate (MB/s)")
        ax2.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
