"""The architecture page's pictures, drawn by the docs build itself (plain SVG, no tools).

- ``layers.svg``: the package's layers, each with its modules, and the imports between
  layers counted from the code's own ``import`` statements (an import upwards would be
  drawn red; the import-linter contracts in pyproject.toml forbid it).
- ``cell.svg`` and ``ctrl_c.svg``: a cell's way through a runner and Ctrl-C's way, as
  sequence diagrams whose steps are written below, next to the code names they cite.

Run at ``builder-inited``; the files go to ``docs/_generated/``.
"""

from __future__ import annotations

import ast
from html import escape
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[2] / "autoawait_runners"
OUT = Path(__file__).resolve().parents[1] / "_generated"

#: Top to bottom, as the layers contract in pyproject.toml says.
LAYERS = [
    ("_embed", "embed(), aembed() and the embed runner"),
    ("_ipython", "the IPython glue: loading, the catalogue, config, one module per magic"),
    ("_runners", "the runner interface, the two families, one module per catalogue name"),
    ("_nesting", "the nesting shim: the switch, parking, the portal"),
    ("_core", "mechanisms: the cell wrapper, Ctrl-C, tracebacks, private names"),
]

FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def _imports() -> dict[tuple[str, str], int]:
    """(from layer, to layer) -> how many import statements, read from the source."""
    counts: dict[tuple[str, str], int] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) < 2:
            continue  # the package face and __main__ are above the layers
        here = parts[0]
        package = ["autoawait_runners", *parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = package[: len(package) - node.level + 1]
            target = [*base, *(node.module.split(".") if node.module else [])]
            if len(target) < 2 or not target[1].startswith("_"):
                continue
            there = target[1]
            if there != here:
                counts[(here, there)] = counts.get((here, there), 0) + 1
    return counts


def _modules(layer: str) -> list[str]:
    return sorted(path.stem for path in (PACKAGE / layer).glob("*.py") if path.stem != "__init__")


def layers_svg() -> str:
    box_width, line, gap, top = 640, 17, 24, 16
    order = [name for name, _ in LAYERS]
    counts = _imports()
    boxes = []
    y = top
    middle: dict[str, float] = {}
    for name, role in LAYERS:
        modules = _wrap(", ".join(_modules(name)), 90)
        height = line * (2 + len(modules)) + 14
        middle[name] = y + height / 2
        text = [
            f"<text x='22' y='{y + line + 2}' font-size='15' font-weight='bold' {FONT}>"
            f"{escape(name)}</text>",
            f"<text x='22' y='{y + 2 * line + 4}' font-size='12' {FONT}>{escape(role)}</text>",
        ]
        text += [
            f"<text x='22' y='{y + (3 + number) * line + 4}' font-size='12' fill='#444' "
            f"font-family='DejaVu Sans Mono, monospace'>{escape(modules_line)}</text>"
            for number, modules_line in enumerate(modules)
        ]
        boxes.append(
            f"<rect x='10' y='{y}' width='{box_width}' height='{height}' rx='8' "
            "fill='#eef3fb' stroke='#3b5b92'/>" + "".join(text)
        )
        y += height + gap
    arrows = []
    pairs = sorted(
        counts.items(), key=lambda item: (order.index(item[0][0]), order.index(item[0][1]))
    )
    for column, ((source, target), count) in enumerate(pairs):
        upward = order.index(target) < order.index(source)
        colour = "#c62828" if upward else "#3b5b92"
        x = box_width + 34 + column * 30
        y1 = middle[source] + (column % 3 - 1) * 6
        y2 = middle[target]
        arrows.append(
            f"<line x1='{box_width + 10}' y1='{y1}' x2='{x}' y2='{y1}' stroke='{colour}' "
            "stroke-opacity='0.6'/>"
            f"<line x1='{x}' y1='{y1}' x2='{x}' y2='{y2}' stroke='{colour}' "
            "marker-end='url(#head)'/>"
            f"<line x1='{x}' y1='{y2}' x2='{box_width + 12}' y2='{y2}' stroke='{colour}' "
            "stroke-opacity='0.3'/>"
            f"<text x='{x + 3}' y='{y2 - 6}' font-size='10' fill='{colour}' {FONT}>"
            f"{count}</text>"
        )
    width = box_width + 50 + 30 * len(pairs)
    caption = (
        "arrows: import statements from one layer into another, counted in the code; "
        "red would be an import upwards"
    )
    return _svg(
        width,
        y + 12,
        "".join(boxes)
        + "".join(arrows)
        + f"<text x='10' y='{y + 4}' font-size='11' fill='#555' {FONT}>{escape(caption)}</text>",
    )


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def sequence_svg(lanes: list[str], steps: list[tuple[int, int, str]]) -> str:
    """A sequence diagram: ``steps`` are (from lane, to lane, label); from == to is a note
    on that lane."""
    lane_width, top, step_height = 170, 50, 40
    width = lane_width * len(lanes) + 20
    height = top + step_height * (len(steps) + 1)
    parts = []
    for index, lane in enumerate(lanes):
        x = 10 + lane_width * index + lane_width / 2
        parts.append(
            f"<rect x='{x - lane_width / 2 + 6}' y='8' width='{lane_width - 12}' height='30' "
            "rx='6' fill='#eef3fb' stroke='#3b5b92'/>"
            f"<text x='{x}' y='28' font-size='12' text-anchor='middle' {FONT}>"
            f"{escape(lane)}</text>"
            f"<line x1='{x}' y1='38' x2='{x}' y2='{height - 10}' stroke='#999' "
            "stroke-dasharray='4 4'/>"
        )
    for number, (source, target, label) in enumerate(steps, 1):
        y = top + step_height * number
        x1 = 10 + lane_width * source + lane_width / 2
        x2 = 10 + lane_width * target + lane_width / 2
        text = f"{number}. {label}"
        if source == target:
            parts.append(
                f"<rect x='{x1 - 6}' y='{y - 14}' width='12' height='20' fill='#3b5b92'/>"
                f"<text x='{x1 + 12}' y='{y}' font-size='11' {FONT}>{escape(text)}</text>"
            )
            continue
        anchor = "start" if x2 > x1 else "end"
        label_x = min(x1, x2) + 6 if x2 > x1 else max(x1, x2) - 6
        parts.append(
            f"<line x1='{x1}' y1='{y}' x2='{x2}' y2='{y}' stroke='#3b5b92' "
            "marker-end='url(#head)'/>"
            f"<text x='{label_x}' y='{y - 6}' font-size='11' text-anchor='{anchor}' {FONT}>"
            f"{escape(text)}</text>"
        )
    return _svg(width, height, "".join(parts))


def _svg(width: float, height: float, body: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>"
        "<defs><marker id='head' markerWidth='8' markerHeight='8' refX='7' refY='4' "
        "orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='context-stroke'/></marker></defs>"
        f"<rect width='100%' height='100%' fill='white'/>{body}</svg>\n"
    )


#: A cell's way through a runner (the lanes are threads and objects; see the page).
CELL_LANES = ["IPython", "Runner", "_ctrl_c", "session loop", "cell task"]
CELL_STEPS = [
    (0, 1, "loop_runner(run_cell_async(...))"),
    (1, 1, "start(): the session, on first use"),
    (1, 2, "waiting_for(CellControls)"),
    (2, 2, "SIGINT now goes to the cell"),
    (1, 3, "hand over: a task of the loop"),
    (3, 4, "steps of CellCoroutine"),
    (4, 3, "its value, or its exception"),
    (3, 1, "the outcome: the wait ends"),
    (2, 2, "handler put back (gives up first if the cell has not ended)"),
    (1, 0, "ExecutionResult; background failures reported"),
]

#: Ctrl-C's way, for a cell wrapped in a CellCoroutine.
CTRL_C_LANES = ["the system", "SIGINT handler", "_ctrl_c.interrupt", "the cell", "waiting code"]
CTRL_C_STEPS = [
    (0, 1, "SIGINT (a wake-up fd wakes a sleeping main thread)"),
    (1, 2, "a press: interrupts += 1"),
    (2, 3, "running Python code: KeyboardInterrupt there"),
    (2, 3, "at an await: cancel(); the wrapper gives KeyboardInterrupt"),
    (2, 1, "the third press: stop waiting"),
    (1, 4, "GaveUpWaiting, or stop_waiting() on a loop below"),
    (4, 3, "give_up: cancel once more, wait 1 s, one line"),
]


def write_pictures(app: Any = None) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "layers.svg").write_text(layers_svg())
    (OUT / "cell.svg").write_text(sequence_svg(CELL_LANES, CELL_STEPS))
    (OUT / "ctrl_c.svg").write_text(sequence_svg(CTRL_C_LANES, CTRL_C_STEPS))


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", write_pictures)
    return {"parallel_read_safe": True}
