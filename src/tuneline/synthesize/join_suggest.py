"""Joins `tuneline init` proposes between the tables it is given: a column of one table whose
values are (nearly all) the key values of another table's column, so each row can bring the
other table's columns (airports.state -> states.abbr brings the state's name)."""

from __future__ import annotations

from dataclasses import dataclass

MIN_COVERAGE = 0.9  # of a column's non-empty values found in the other table's key column
MIN_DISTINCT = 3  # fewer distinct values are flags or categories, not references


@dataclass(frozen=True)
class SuggestedJoin:
    left: str  # the table whose rows bring columns
    right: str  # the table looked up, by a unique column
    left_column: str
    right_column: str
    coverage: float
    columns: tuple[str, ...] = ()  # what the left rows bring (all but the join column if none)

    def entry(self) -> dict[str, object]:
        """The join as `ingest.sources[].join` lists it."""
        on: object = (self.left_column if self.left_column == self.right_column
                      else {self.left_column: self.right_column})
        return {"source": self.right, "on": on,
                **({"columns": list(self.columns)} if self.columns else {})}


def suggest_joins(tables: dict[str, list[dict[str, str]]]) -> list[SuggestedJoin]:
    """At most one join per pair of tables, never both ways, never into a table that brings
    columns itself (no chains): the best-covered reference column of each pair."""
    found: dict[tuple[str, str], SuggestedJoin] = {}
    for left, left_rows in tables.items():
        for right, right_rows in tables.items():
            if left == right:
                continue
            best = _best_reference(left, left_rows, right, right_rows)
            if best is not None:
                found[(left, right)] = best
    chosen: list[SuggestedJoin] = []
    for (left, right), join in sorted(found.items(), key=lambda item: -item[1].coverage):
        taken = {(j.left, j.right) for j in chosen}
        brings = {j.left for j in chosen}
        looked_up = {j.right for j in chosen}
        if (right, left) in taken or right in brings or left in looked_up:
            continue
        chosen.append(join)
    return chosen


def _best_reference(left: str, left_rows: list[dict[str, str]], right: str,
                    right_rows: list[dict[str, str]]) -> SuggestedJoin | None:
    keys = _unique_columns(right_rows)
    best: SuggestedJoin | None = None
    for left_column in left_rows[0] if left_rows else {}:
        values = [str(row.get(left_column) or "").strip() for row in left_rows]
        values = [v for v in values if v]
        if len(set(values)) < MIN_DISTINCT:
            continue
        for right_column, key_values in keys.items():
            if _looks_numeric(values) and left_column != right_column:
                continue  # 1, 2, 3 ... match any other numbering: only by the same name
            coverage = sum(v in key_values for v in values) / len(values)
            if coverage < MIN_COVERAGE:
                continue
            candidate = SuggestedJoin(left, right, left_column, right_column, coverage)
            same_name = left_column == right_column
            if best is None or (coverage, same_name) > (best.coverage,
                                                        best.left_column == best.right_column):
                best = candidate
    if best is not None and _unique_columns(left_rows).get(best.left_column) is not None \
            and len(left_rows) < len(right_rows):
        return None  # one-to-one: the larger table brings the smaller one's columns
    return best


def _unique_columns(rows: list[dict[str, str]]) -> dict[str, set[str]]:
    """Columns whose values are non-empty and distinct in every row: what can be looked up."""
    columns: dict[str, set[str]] = {}
    for column in rows[0] if rows else {}:
        values = [str(row.get(column) or "").strip() for row in rows]
        if all(values) and len(set(values)) == len(values):
            columns[column] = set(values)
    return columns


def _looks_numeric(values: list[str]) -> bool:
    return all(v.replace(".", "", 1).lstrip("-").isdigit() for v in values)
