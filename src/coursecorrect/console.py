"""Terminal output shared by the CLI commands."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)


def summary_table(title: str, values: dict[str, object]) -> Table:
    """A two-column table of a stage's summary (floats to 4 significant digits)."""
    table = Table("metric", "value", title=title)
    for key, value in values.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table
