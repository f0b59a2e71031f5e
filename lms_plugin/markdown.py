"""Authored Markdown to safe HTML: markdown-it-py renders, nh3 sanitizes with an allow-list.

Lessons are written by trainers and imported from files or the web editor, so their HTML is
never trusted: raw HTML in the source is not rendered, and the output is cleaned again with an
allow-list of tags, attributes and URL schemes. Relative image paths (``images/x.png``, shipped
beside the lesson file) are rewritten to the catalog's asset route ``/content/<module_id>/…``
so images are served by this tool (hospital networks block outside hosts).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
    "del", "s", "sup", "sub",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table") \
    .enable("strikethrough")


def asset_url(module_id: int, path: str) -> str | None:
    """The asset route for a relative path, or None when the path is not a local relative one
    (absolute URL, absolute path, fragment, or ``..`` escaping the module folder)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith(("/", "#")) or not parts.path:
        return None
    clean = parts.path
    while clean.startswith("./"):
        clean = clean[2:]
    segments = clean.split("/")
    if any(seg in ("..", "") for seg in segments):
        return None
    return f"/content/{module_id}/{quote(clean)}"


# ``[[local: wording]]`` (catalog.content_format.LOCAL_MARKER_RE, issue 17), matched in the
# sanitized HTML: the wording is already escaped there, so wrapping it stays safe.
_LOCAL_MARKER_HTML_RE = re.compile(r"\[\[local:\s*(.*?)\s*\]\]", re.S)


def render_markdown(text: str, module_id: int | None = None, *,
                    highlight_local: bool = False) -> Markup:
    """Render and sanitize; ``module_id`` enables rewriting relative image paths.

    Localisation markers ``[[local: wording]]`` never reach a reader raw: with
    ``highlight_local`` (an author previewing a draft) the wording is shown in a highlighted
    ``<mark class="local-marker">``; otherwise only the wording is shown."""
    tokens = _md.parse(text or "")
    if module_id is not None:
        for token in tokens:
            for child in token.children or []:
                if child.type == "image":
                    src = str(child.attrGet("src") or "")
                    rewritten = asset_url(module_id, src)
                    if rewritten is not None:
                        child.attrSet("src", rewritten)
                    elif not (urlsplit(src).scheme or src.startswith("//")):
                        # A local path the guard refused (``..``, ``/admin``…): left as it
                        # is, the browser would resolve it against the page and request
                        # any URL of this site. Show the alt text instead.
                        child.type, child.tag, child.nesting = "text", "", 0
                        child.content, child.children = child.content or "", None
    html = _md.renderer.render(tokens, _md.options, {})
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                      url_schemes=URL_SCHEMES, link_rel="noopener noreferrer")
    clean = _LOCAL_MARKER_HTML_RE.sub(
        (lambda m: f'<mark class="local-marker">{m.group(1)}</mark>') if highlight_local
        else (lambda m: m.group(1)), clean)
    return Markup(clean)  # noqa: S704  (sanitized by nh3 just above; markers wrap its text)


_PROMPT_IMAGE_RE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?(images/[^)\s>]+)>?\s*\)")


def render_prompt(text: str, module_id: int) -> Markup:
    """A question prompt: plain text (escaped, never Markdown: ``2*3`` or ``_____`` stay as
    written), except ``![alt](images/x.png)``, which becomes an ``<img>`` served by the
    module's asset route (lms_plugin/content/README.md, "Questions"). The output is phrasing
    content, so it may sit inside a ``<legend>`` or ``<label>``."""
    parts: list[str] = []
    last = 0
    text = _LOCAL_MARKER_HTML_RE.sub(lambda m: m.group(1), text or "")  # wording, no brackets
    for match in _PROMPT_IMAGE_RE.finditer(text or ""):
        url = asset_url(module_id, match.group(2))
        parts.append(escape(text[last:match.start()]))
        parts.append(Markup('<img class="question-image" src="{}" alt="{}">').format(
            url, match.group(1).strip()) if url is not None else escape(match.group(0)))
        last = match.end()
    parts.append(escape((text or "")[last:]))
    return Markup("").join(parts)
