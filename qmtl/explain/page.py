"""A self-contained HTML page of the DAG picture (``qmtl compile --emit html``).

One file, no network: the SVG Graphviz laid out is inlined, with the ``explain`` table above it and a
few lines of script that pan (drag) and zoom (wheel, buttons, ``#zoom=N`` in the link) by moving the SVG's viewBox, which stays
fast for thousands of ops because the browser never re-lays anything out.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .graph import to_svg
from .nodes import Explanation
from .render import explanation_html

_SCRIPT = """
(function () {
  var svg = document.querySelector('#dag svg');
  if (!svg) return;
  svg.removeAttribute('width'); svg.removeAttribute('height');
  var box = svg.viewBox.baseVal, home = [box.x, box.y, box.width, box.height];
  function set(v) { box.x = v[0]; box.y = v[1]; box.width = v[2]; box.height = v[3]; }
  function zoom(f, cx, cy) {
    var nw = box.width * f, nh = box.height * f;
    set([cx - (cx - box.x) * f, cy - (cy - box.y) * f, nw, nh]);
  }
  function point(e) {
    var r = svg.getBoundingClientRect();
    return [box.x + (e.clientX - r.left) / r.width * box.width,
            box.y + (e.clientY - r.top) / r.height * box.height];
  }
  svg.addEventListener('wheel', function (e) {
    e.preventDefault(); var p = point(e); zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, p[0], p[1]);
  }, {passive: false});
  var drag = null;
  svg.addEventListener('mousedown', function (e) { drag = [e.clientX, e.clientY]; });
  window.addEventListener('mouseup', function () { drag = null; });
  window.addEventListener('mousemove', function (e) {
    if (!drag) return;
    var r = svg.getBoundingClientRect();
    box.x -= (e.clientX - drag[0]) / r.width * box.width;
    box.y -= (e.clientY - drag[1]) / r.height * box.height;
    drag = [e.clientX, e.clientY];
  });
  document.getElementById('zoom-in').onclick = function () {
    zoom(1 / 1.5, box.x + box.width / 2, box.y + box.height / 2); };
  document.getElementById('zoom-out').onclick = function () {
    zoom(1.5, box.x + box.width / 2, box.y + box.height / 2); };
  document.getElementById('zoom-fit').onclick = function () { set(home); };
  // a link can open the page zoomed: page.html#zoom=4 (centred)
  var m = /zoom=([0-9.]+)/.exec(location.hash);
  if (m && +m[1] > 0) zoom(1 / +m[1], box.x + box.width / 2, box.y + box.height / 2);
  document.getElementById('dag').setAttribute('data-ready', '1');
})();
"""

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 1em; }
#dag { border: 1px solid #ccc; height: 80vh; overflow: hidden; cursor: grab; }
#dag svg { width: 100%; height: 100%; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 1em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
button { margin-right: 4px; }
"""


def to_html(compiled: Any, explanation: Explanation, group: str = "node") -> str:
    """The page as text: title, the explain table, zoom buttons, the inlined SVG, the script."""
    svg = to_svg(compiled, explanation, group)
    svg = re.sub(r"^<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>\s*)?", "", svg.lstrip())  # inline: no prolog
    title = html.escape(f"{compiled.name} — qmtl DAG")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(compiled.name)}</h1>{explanation_html(explanation)}"
            "<p><button id=\"zoom-in\">zoom in</button><button id=\"zoom-out\">zoom out</button>"
            "<button id=\"zoom-fit\">fit</button> drag to pan, wheel to zoom</p>"
            f"<div id=\"dag\">{svg}</div><script>{_SCRIPT}</script></body></html>\n")
