"""The result tables of `rvos eval mevis|davis` (values ×100 with two decimals, as papers print them)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

DAVIS_STATS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def mevis_table(result: dict[str, Any]) -> Table:
    """Rows: all expressions, then each kind present; columns: count, J, F, J&F (×100, two decimals)."""
    table = Table()
    for column in ("expressions", "count", "J", "F", "J&F"):
        table.add_column(column, justify="left" if column == "expressions" else "right")
    rows = [("all", result), *result["by_kind"].items()]
    for label, values in rows:
        table.add_row(
            label, str(values["expressions"]), *(f"{100 * values[k]:.2f}" for k in ("J", "F", "J&F"))
        )
    return table


def davis_table(result: dict[str, Any]) -> Table:
    """Rows: anno_0..anno_3 and their mean; columns: the DAVIS 2017 statistics (×100, two decimals)."""
    table = Table()
    table.add_column("run")
    for column in DAVIS_STATS:
        table.add_column(column, justify="right")
    for run, values in [*result["runs"].items(), ("mean", result["mean"])]:
        table.add_row(run, *(f"{100 * values[k]:.2f}" for k in DAVIS_STATS), end_section=run == "anno_3")
    return table
