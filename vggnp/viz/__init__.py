"""Pixels, apart from the math: colour maps and overlays, boxes, the HTML report."""
