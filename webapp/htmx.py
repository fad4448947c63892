"""Full page or fragment: one URL per screen, and htmx may ask for one block of its template.

A fragment is a `{% block %}` of the page template (jinja2-fragments), so the same view serves the
page to a browser and the block to htmx. Every response says `Vary: HX-Request` so caches keep both.
"""

import json

from flask import Response, make_response, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    """True for htmx requests that want a fragment.

    History restores (back button after a cache miss) and boosted links also send `HX-Request`,
    but they want the whole page.
    """
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-History-Restore-Request") != "true"
        and headers.get("HX-Boosted") != "true"
    )


def render(template: str, block: str | None = None, status: int = 200, **context) -> Response:
    """Render `template`, or only its `block` when htmx asks for a fragment."""
    if block and is_htmx():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def hx_redirect(url: str, status: int = 303) -> Response:
    """Send the browser to `url`: a full navigation for htmx (HX-Redirect), a 303 otherwise."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
    else:
        response = make_response("", status)
        response.headers["Location"] = url
    response.vary.add("HX-Request")
    return response


def hx_trigger(response: Response, event: str, detail: dict | str | None = None) -> Response:
    """Add an `HX-Trigger` event (e.g. `toast`) to `response`, keeping events already set."""
    existing = response.headers.get("HX-Trigger")
    events = json.loads(existing) if existing and existing.startswith("{") else ({existing: None} if existing else {})
    events[event] = detail
    response.headers["HX-Trigger"] = json.dumps(events, separators=(",", ":"))
    return response
