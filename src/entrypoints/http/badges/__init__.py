"""SVG badges of counters (README hit counters) and shields.io's endpoint JSON.

render.py draws, widths.py measures with font_metrics.py (a table written by
tools/badge_font_metrics.py), colors.py and styles.py hold the palette and the looks, and
routes.py serves them over HTTP with the app's CounterService.
"""
