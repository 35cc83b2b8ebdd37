"""Campaign YAML -> a validated ``Campaign``; errors name the file, the line and the key."""

from .loader import load_campaign, project_suppression
from .smtp import parse_smtp_url

__all__ = ["load_campaign", "parse_smtp_url", "project_suppression"]
