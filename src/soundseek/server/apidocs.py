"""``/api/docs``: the API reference as one server-rendered HTML page.

FastAPI's default Swagger UI page loads its JavaScript and CSS from a CDN, which breaks the
"works offline, loads nothing from elsewhere" promise (and would need the CSP to allow a third
party).  This page is built from the same OpenAPI schema (``/api/openapi.json``), has no
script at all and uses only ``/static/style.css``.  For an interactive client, load
``/api/openapi.json`` into any OpenAPI tool.
"""

from __future__ import annotations

import re
from html import escape

_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

#: the page's icon, inline (the same as the search page's): a browser then never asks for /favicon.ico
ICON = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Cpath "
        "d='M1 8h2l2-5 3 10 3-8 2 3h2' fill='none' stroke='%234682c8' stroke-width='2'/%3E%3C/svg%3E")


def text(value: object) -> str:
    """Escaped text with its Markdown code spans (a word between backticks) as ``<code>``."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(str(value)))


def type_name(schema: dict) -> str:
    """A parameter's type in words: ``integer``, ``number`` for ``anyOf[number, null]`` (an
    optional parameter: the "required" column says it may be left out), ``array of string``."""
    if "anyOf" in schema or "oneOf" in schema:
        kinds = [type_name(s) for s in schema.get("anyOf", schema.get("oneOf", [])) if s.get("type") != "null"]
        return " or ".join(k for k in kinds if k)
    typ = str(schema.get("type", ""))
    if typ == "array" and isinstance(schema.get("items"), dict):
        inner = type_name(schema["items"])
        return f"array of {inner}" if inner else typ
    if not typ and "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return typ


def render_api_docs(schema: dict) -> str:
    info = schema.get("info", {})
    title = escape(str(info.get("title", "API")))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title} API reference</title>",
        f'<link rel="icon" href="{ICON}">',
        '<link rel="stylesheet" href="/static/style.css"></head><body><main class="apidocs">',
        f"<h1>{title} API <small>{escape(str(info.get('version', '')))}</small></h1>",
    ]
    if info.get("summary"):
        parts.append(f"<p>{text(info['summary'])}</p>")
    if info.get("description"):
        parts.append(f"<p>{text(info['description'])}</p>")
    parts.append('<p>Machine-readable schema: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI '
                 f"{escape(str(schema.get('openapi', '')))}).</p>")
    parts.append("<nav><ul>")
    ops = []
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                anchor = f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "")
                ops.append((path, method, item[method], anchor))
                parts.append(f'<li><a href="#{escape(anchor)}"><code>{method.upper()} {escape(path)}</code></a> — '
                             f"{text(item[method].get('summary', ''))}</li>")
    parts.append("</ul></nav>")
    for path, method, op, anchor in ops:
        parts.append(f'<section id="{escape(anchor)}"><h2><code>{method.upper()} {escape(path)}</code></h2>')
        if op.get("summary"):
            parts.append(f"<p><strong>{text(op['summary'])}</strong></p>")
        if op.get("description"):
            parts.append(f"<p>{text(op['description'])}</p>")
        params = op.get("parameters", [])
        if params:
            parts.append("<table><thead><tr><th>parameter</th><th>in</th><th>required</th><th>type</th>"
                         "<th>description</th></tr></thead><tbody>")
            for p in params:
                sch = p.get("schema", {})
                typ = type_name(sch)
                if "default" in sch:
                    typ += f" (default {sch['default']!r})"
                parts.append(
                    f"<tr><td><code>{escape(str(p.get('name', '')))}</code></td><td>{escape(str(p.get('in', '')))}</td>"
                    f"<td>{'yes' if p.get('required') else 'no'}</td><td>{escape(typ)}</td>"
                    f"<td>{text(p.get('description', ''))}</td></tr>"
                )
            parts.append("</tbody></table>")
        body = op.get("requestBody", {}).get("content", {})
        if body:
            parts.append(f"<p>Request body: {escape(', '.join(body))}</p>")
        responses = op.get("responses", {})
        if responses:
            parts.append("<ul>")
            for code, resp in responses.items():
                parts.append(f"<li><code>{escape(str(code))}</code> {text(resp.get('description', ''))}</li>")
            parts.append("</ul>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
