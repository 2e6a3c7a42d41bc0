"""The validation report: ``DIR/report.html`` (self-contained) and ``DIR/report.json``.

Files written (each atomically, :func:`deepqs.io.atomic.atomic_output`):

* ``report.html``: one file, figures inline as base64 PNG; the summary table (check, section,
  status), the levels attained ("0, 1, A"), "X out of N evaluable items pass", the inputs with
  their SHA-256 checksums, then one section per check (description, status, warnings, numbers,
  tables, figures).  Level 4 and the qualifiers W and O are stated "not evaluated".
* ``report.json``: one object (snake_case keys, plain numbers, NaN written as null)::

    {"format": "deepqs-validation-report", "version": 1, "deepqs_version": ..., "created_utc": ...,
     "levels": ["0", "1", "A"], "levels_text": "0, 1, A",
     "score": {"passed": X, "evaluable": N, "text": "X out of N evaluable items pass"},
     "not_evaluated": {"4": ..., "W": ..., "O": ...},
     "parameters": {"threshold": T, "resolution_A": R, "voxel_size_A": v, "shape_zyx": [...]},
     "inputs": [{"role": "map", "path": ..., "sha256": ..., "bytes": ...}, ...],
     "checks": [{"id": "0.a", "name": ..., "level": "0", "status": "ok"|"warning"|"not-applicable"|
                 "failed-to-run", "warnings": [...], "reason": str|null, "description": ...,
                 "values": {...}, "tables": {...}, "figures": {"slices": "figures/0.a_slices.png"},
                 "seconds": s}, ...],
     "maps": {"local_resolution": "local_resolution.mrc"}, "pdf": "report.pdf"|null, "seconds_total": s}

* ``report.pdf``: the HTML printed by a headless Chromium/Chrome when one is installed
  (``"pdf": "report.pdf"`` in the JSON, else ``null``).
* ``figures/<check id>_<name>.png``: every figure, also referenced from the JSON.
* ``<name>.mrc``: maps a check produced on the input grid (1.c: ``local_resolution.mrc``).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
import subprocess
from typing import Any, Dict, List

import numpy as np

from deepqs.io.atomic import atomic_output
from deepqs.validation import checks as C
from deepqs.validation.inputs import sha256
from deepqs.validation.runner import LEVEL_NAMES, NOT_EVALUATED, ValidationResult

STATUS_COLOURS = {C.OK: "#2e7d32", C.WARNING: "#e65100", C.NOT_APPLICABLE: "#757575", C.FAILED: "#b71c1c"}


def plain(v: Any) -> Any:
    """JSON-able copy: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, bytes):
        return None
    return v


def _figure_name(cid: str, name: str) -> str:
    return f"figures/{cid}_{name}.png"


def inputs_table(result: ValidationResult) -> List[Dict[str, Any]]:
    rows = []
    for role, path in result.inputs.files.items():
        if path and os.path.isfile(path):
            rows.append({"role": role, "path": os.path.abspath(path), "sha256": sha256(path),
                         "bytes": os.path.getsize(path)})
        else:
            rows.append({"role": role, "path": path, "sha256": None, "bytes": None})
    return rows


#: Browsers that can print the HTML report to PDF (headless), tried in this order.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser():
    """Path of a headless-capable Chromium/Chrome, or None."""
    for name in BROWSERS:
        p = shutil.which(name)
        if p:
            return p
    return None


def html_to_pdf(html_path: str, pdf_path: str, timeout: float = 120.0) -> bool:
    """Print ``html_path`` to ``pdf_path`` with a headless browser; False when none is available or it fails."""
    browser = find_browser()
    if browser is None:
        return False
    from deepqs.io.atomic import atomic_output
    try:
        with atomic_output(pdf_path) as tmp:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={tmp}",
                            "file://" + os.path.abspath(html_path)], check=True, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not os.path.getsize(tmp):
                raise OSError("empty PDF")
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def to_json(result: ValidationResult, inputs_rows=None, maps=None) -> Dict[str, Any]:
    from deepqs import __version__

    inp = result.inputs
    checks = []
    for c in result.checks:
        checks.append({"id": c.id, "name": c.name, "level": c.level, "status": c.status,
                       "warnings": list(c.warnings), "reason": c.reason, "description": c.description,
                       "values": plain(c.values), "tables": plain(c.tables),
                       "figures": {k: _figure_name(c.id, k) for k in c.figures}, "seconds": float(c.seconds)})
    return {
        "format": "deepqs-validation-report", "version": 1, "deepqs_version": __version__,
        "created_utc": result.created_utc,
        "levels": list(result.levels), "levels_text": ", ".join(result.levels),
        "score": {"passed": result.passed, "evaluable": result.evaluable,
                  "text": f"{result.passed} out of {result.evaluable} evaluable items pass"},
        "not_evaluated": dict(NOT_EVALUATED),
        "parameters": {"threshold": inp.threshold, "resolution_A": inp.resolution, "voxel_size_A": inp.voxel_size,
                       "shape_zyx": [int(v) for v in inp.map.shape],
                       "origin_A": [float(v) for v in inp.map.origin]},
        "inputs": inputs_rows if inputs_rows is not None else inputs_table(result),
        "checks": checks,
        "maps": maps or {},
        "pdf": None,
        "seconds_total": float(result.seconds),
    }


_CSS = """
body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
th{background:#eee}.st{color:#fff;padding:1px 6px;border-radius:3px;font-size:12px}
h2{border-bottom:2px solid #4a7ab5;padding-bottom:3px}.check{margin-bottom:2em}
.warn{color:#e65100}.desc{color:#555;font-size:13px}img{max-width:100%;border:1px solid #ddd;margin:4px 0}
code{font-size:12px}
"""


def _status(s: str) -> str:
    return f'<span class="st" style="background:{STATUS_COLOURS.get(s, "#000")}">{html.escape(s)}</span>'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        if len(v) > 8:
            return f"[{len(v)} values, see report.json]"
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return html.escape(str(v))


def _table(cols: Dict[str, List[Any]]) -> str:
    keys = list(cols)
    n = max((len(v) for v in cols.values()), default=0)
    out = ["<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"]
    for i in range(n):
        out.append("<tr>" + "".join(f"<td>{_fmt(cols[k][i])}</td>" for k in keys) + "</tr>")
    out.append("</table>")
    return "".join(out)


def to_html(result: ValidationResult, doc: Dict[str, Any]) -> str:
    e = html.escape
    p = doc["parameters"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>deepqs validation report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>Map validation report</h1>",
             f"<p>deepqs {e(str(doc['deepqs_version']))}, {e(doc['created_utc'])}; threshold {p['threshold']:.5g}, "
             f"reported resolution {p['resolution_A']:g} Å, voxel {p['voxel_size_A']:.4g} Å, "
             f"box {' × '.join(str(v) for v in p['shape_zyx'][::-1])} voxels (x × y × z).</p>",
             f"<h2>Summary</h2><p><b>Levels attained: {e(doc['levels_text'])}</b></p>",
             f"<p><b>{e(doc['score']['text'])}</b></p>",
             "<table><tr><th>check</th><th>name</th><th>section</th><th>status</th><th>note</th></tr>"]
    for c in result.checks:
        note = "; ".join(c.warnings) if c.warnings else (c.reason or "")
        parts.append(f"<tr><td><a href='#c{e(c.id)}'>{e(c.id)}</a></td><td>{e(c.name)}</td>"
                     f"<td>{e(LEVEL_NAMES.get(c.level, c.level))}</td><td>{_status(c.status)}</td>"
                     f"<td>{e(note)}</td></tr>")
    for lv, text in NOT_EVALUATED.items():
        parts.append(f"<tr><td>{e(lv)}</td><td>{e(text)}</td><td>{e(lv)}</td><td>not evaluated</td><td></td></tr>")
    parts.append("</table>")
    parts.append("<h2>Inputs</h2><table><tr><th>role</th><th>file</th><th>bytes</th><th>SHA-256</th></tr>")
    for r in doc["inputs"]:
        parts.append(f"<tr><td>{e(r['role'])}</td><td>{e(str(r['path']))}</td><td>{r['bytes'] or ''}</td>"
                     f"<td><code>{e(str(r['sha256'] or ''))}</code></td></tr>")
    parts.append("</table>")
    level = None
    for c in result.checks:
        if c.level != level:
            level = c.level
            parts.append(f"<h2>{e(LEVEL_NAMES.get(level, level))}</h2>")
        parts.append(f"<div class='check' id='c{e(c.id)}'><h3>{e(c.id)} {e(c.name)} {_status(c.status)}</h3>")
        if c.description:
            parts.append(f"<p class='desc'>{e(c.description)}</p>")
        if c.reason:
            parts.append(f"<p>{e(c.reason)}</p>")
        for w in c.warnings:
            parts.append(f"<p class='warn'>⚠ {e(w)}</p>")
        scal = {k: v for k, v in c.values.items() if k != "traceback" and not (isinstance(v, (list, tuple)) and len(v) > 8)
                and not (isinstance(v, dict) and any(isinstance(x, (list, dict)) for x in v.values()))}
        if scal:
            parts.append("<table>" + "".join(f"<tr><th>{e(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in scal.items())
                         + "</table>")
        for name, tab in c.tables.items():
            if tab and any(len(v) for v in tab.values()):
                parts.append(f"<p><b>{e(name)}</b></p>" + _table(tab))
        for name, png in c.figures.items():
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<div><img alt='{e(c.id)} {e(name)}' src='data:image/png;base64,{b64}'></div>")
        parts.append("</div>")
    parts.append("<h2>Not evaluated</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in NOT_EVALUATED.values()) + "</ul>")
    parts.append(f"<p class='desc'>Total time {doc['seconds_total']:.1f} s.</p></body></html>")
    return "\n".join(parts)


def write_report(result: ValidationResult, out_dir: str, pdf: bool = True) -> Dict[str, Any]:
    """Write ``report.html``, ``report.json``, the figures and the maps into ``out_dir`` (and
    ``report.pdf`` when ``pdf`` and a headless browser is installed); return the JSON."""
    from deepqs.io.maps import write_map

    os.makedirs(out_dir, exist_ok=True)
    for c in result.checks:
        for name, png in c.figures.items():
            path = os.path.join(out_dir, _figure_name(c.id, name))
            with atomic_output(path) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(png)
    maps = {}
    for c in result.checks:
        for name, m in c.maps.items():
            write_map(os.path.join(out_dir, f"{name}.mrc"), m)
            maps[name] = f"{name}.mrc"
    doc = to_json(result, maps=maps)
    html_path = os.path.join(out_dir, "report.html")
    with atomic_output(html_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(to_html(result, doc))
    if pdf and html_to_pdf(html_path, os.path.join(out_dir, "report.pdf")):
        doc["pdf"] = "report.pdf"
    with atomic_output(os.path.join(out_dir, "report.json")) as tmp:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
    return doc
