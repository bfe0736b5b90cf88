"""Rendering stored results: terminal tables, markdown, HTML and figures."""
