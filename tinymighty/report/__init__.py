"""The study report: figures (matplotlib), one Jinja2 HTML page, and the same page as PDF (WeasyPrint)."""
