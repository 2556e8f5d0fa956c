"""The web dashboard served by ``cpool serve`` at ``/`` (server-rendered HTML, inline SVG
charts, a little vanilla JavaScript for live updates; no build step, nothing from a CDN)."""

from computepool.server.ui.routes import install

__all__ = ["install"]
