"""A self-contained HTML explorer of the maps (plotly.js inlined; opens from disk, no server).

Selectors for arity, embedding and method, one toggle per category, an element filter (show
only compositions that contain *all* the listed elements, e.g. ``Li, O``) and hover text with
formula, category and the neutral oxidation-state assignment. The page keeps the number of
points shown in ``#count`` (and ``window.explorer.shown()``), which the browser test reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from crystalspace.maps.build import read_points
from crystalspace.maps.figures import CATEGORY_COLOURS
from crystalspace.storage import atomic_path

EXPLORER = "explorer.html"

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>crystalspace maps</title>
<style>
 body { font-family: sans-serif; margin: 12px; }
 #controls { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
 #plot { width: 100%; height: 80vh; }
</style>
<script>__PLOTLY__</script></head>
<body>
<div id="controls">
 <label>arity <select id="arity"></select></label>
 <label>embedding <select id="embedding"></select></label>
 <label>method <select id="method"></select></label>
 <span id="toggles"></span>
 <label>elements <input id="elements" placeholder="e.g. Li, O" size="12"></label>
 <span id="count"></span>
</div>
<div id="plot"></div>
<script>
const DATA = __DATA__;
const COLOURS = __COLOURS__;
const $ = (id) => document.getElementById(id);
function fill(sel, values) {
  sel.innerHTML = values.map((v) => `<option value="${v}">${v}</option>`).join("");
}
fill($("arity"), Object.keys(DATA.arities));
$("toggles").innerHTML = DATA.categories.map((c) =>
  `<label style="color:${COLOURS[c]}"><input type="checkbox" id="show-${c}" checked> ${c}</label>`).join(" ");
function arityData() { return DATA.arities[$("arity").value]; }
function refreshChoices() {
  const a = arityData(), keep = [$("embedding").value, $("method").value];
  fill($("embedding"), a.embeddings); fill($("method"), a.methods);
  if (a.embeddings.includes(keep[0])) $("embedding").value = keep[0];
  if (a.methods.includes(keep[1])) $("method").value = keep[1];
}
function wanted() {
  return $("elements").value.split(/[\\s,]+/).filter((s) => s.length > 0);
}
let shownCount = 0;
function draw() {
  const a = arityData(), key = $("embedding").value + "/" + $("method").value;
  const map = a.maps[key], need = wanted(), traces = [];
  shownCount = 0;
  DATA.categories.forEach((cat, ci) => {
    if (!$("show-" + cat).checked) return;
    const x = [], y = [], text = [];
    for (let k = 0; k < map.row.length; k++) {
      const i = map.row[k];
      if (a.category[i] !== ci) continue;
      const els = a.elements[i].split(" ");
      if (!need.every((e) => els.includes(e))) continue;
      x.push(map.x[k]); y.push(map.y[k]);
      text.push(`${a.formula[i]}<br>${cat}<br>${a.oxidation[i] || "no neutral assignment"}<br>${a.anion[i]}`);
    }
    shownCount += x.length;
    traces.push({ type: "scattergl", mode: "markers", name: cat, x: x, y: y, text: text,
                  hoverinfo: "text", marker: { size: 4, color: COLOURS[cat], opacity: 0.7 } });
  });
  Plotly.react("plot", traces, { title: { text: `arity ${$("arity").value}: ${key}` }, hovermode: "closest",
    xaxis: { showticklabels: false }, yaxis: { showticklabels: false },
    margin: { l: 20, r: 20, t: 40, b: 20 } });
  $("count").textContent = `${shownCount} points shown`;
}
window.explorer = { shown: () => shownCount, draw: draw };
$("arity").addEventListener("change", () => { refreshChoices(); draw(); });
["embedding", "method", "elements"].forEach((id) => $(id).addEventListener("change", draw));
$("elements").addEventListener("input", draw);
DATA.categories.forEach((c) => $("show-" + c).addEventListener("change", draw));
refreshChoices(); draw();
</script></body></html>
"""


def explorer_data(points: pd.DataFrame) -> dict[str, Any]:
    """The page's data: per arity the compositions once, and per map its coordinates."""
    categories = [c for c in CATEGORY_COLOURS if c in set(points["category"])]
    arities: dict[str, Any] = {}
    for arity, sub in points.groupby("arity", sort=True):
        comps = sub.drop_duplicates("formula").reset_index(drop=True)
        index = {f: i for i, f in enumerate(comps["formula"])}
        maps = {}
        for (name, method), m in sub.groupby(["embedding", "method"], sort=False):
            maps[f"{name}/{method}"] = {
                "row": [index[f] for f in m["formula"]],
                "x": [round(float(v), 3) for v in m["x"]],
                "y": [round(float(v), 3) for v in m["y"]],
            }
        arities[str(arity)] = {
            "embeddings": list(dict.fromkeys(sub["embedding"])),
            "methods": list(dict.fromkeys(sub["method"])),
            "formula": comps["formula"].tolist(),
            "category": [categories.index(c) for c in comps["category"]],
            "elements": comps["elements"].tolist(),
            "oxidation": comps["oxidation"].tolist(),
            "anion": comps["anion"].tolist(),
            "maps": maps,
        }
    return {"categories": categories, "arities": arities}


def write_explorer(maps: str | Path, out: str | Path | None = None) -> Path:
    """Write the explorer page for a maps folder (default ``maps/explorer.html``)."""
    from plotly.offline import get_plotlyjs

    path = Path(out) if out is not None else Path(maps) / EXPLORER
    data = json.dumps(explorer_data(read_points(maps)), separators=(",", ":"))
    page = (
        _PAGE.replace("__DATA__", data)
        .replace("__COLOURS__", json.dumps(CATEGORY_COLOURS))
        .replace("__PLOTLY__", get_plotlyjs().replace("</script>", "<\\/script>"))
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
