"""Tables and examples: what ``omicslens bench fuzz`` prints and docs/reliability.md shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from omicslens.bench.fuzz.runner import FAILURES, OUTCOMES, Result


def summarise(results: Sequence[Result]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for result in results:
        table.setdefault(result.source, Counter())[result.outcome] += 1
    total: Counter[str] = Counter()
    for counts in table.values():
        total.update(counts)
    table["all"] = total
    return {source: {o: counts.get(o, 0) for o in OUTCOMES} for source, counts in table.items()}


def format_table(summary: dict[str, dict[str, int]], columns: Sequence[str] = FAILURES) -> str:
    """One row per input; ``columns`` are the failure classes shown (any other failure
    class that occurred is added, so nothing is hidden)."""
    shown = [o for o in FAILURES if o in columns or summary["all"].get(o, 0)]
    head = f"| input | tried | ok+typed | {' | '.join(shown)} |"
    lines = [head, "|---|" + "---:|" * (2 + len(shown))]
    for source, counts in summary.items():
        tried = sum(counts.values())
        good = counts["ok"] + counts["typed"]
        cells = " | ".join(str(counts[o]) for o in shown)
        label = f"**{source}**" if source == "all" else source
        lines.append(f"| {label} | {tried} | {good} | {cells} |")
    return "\n".join(lines)


def format_examples(results: Sequence[Result], per_class: int = 3) -> str:
    lines = []
    for outcome in FAILURES:
        bad = [r for r in results if r.outcome == outcome]
        if not bad:
            continue
        lines.append(f"{outcome} ({len(bad)}):")
        for result in bad[:per_class]:
            name, which = next((n, o) for n, o in result.runs.items() if o[0] == outcome)
            side = "info" if name == "cli" else name
            lines.append(f"  {result.case} [{side}] {which[1][:300]}")
    return "\n".join(lines)
