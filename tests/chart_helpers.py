"""Checks on chart files shared by the chart and what-if tests."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from screening import charts


def check_chart_files(png, svg):
    """A valid PNG, and an SVG whose glyph outlines come from the CJK font (text as paths)."""
    from fontTools.ttLib import TTFont
    from PIL import Image

    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 500
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    font = charts.find_cjk_font()
    with TTFont(font.path, fontNumber=font.index, lazy=True) as tt:
        postscript = tt["name"].getDebugName(6)
    assert f'id="{postscript}-' in svg.read_text(encoding="utf-8")
