"""Rendering: sandboxed Jinja variants, CSS inlined once, the text part, pre-flight checks."""

from .checks import GMAIL_CLIP_BYTES, check_html, missing_identification
from .fields import bare_names, greeting_names
from .renderer import VERIFY_SAMPLE, Renderer, spread

__all__ = [
    "GMAIL_CLIP_BYTES",
    "VERIFY_SAMPLE",
    "Renderer",
    "bare_names",
    "check_html",
    "greeting_names",
    "missing_identification",
    "spread",
]
