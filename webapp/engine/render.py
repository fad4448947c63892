"""Sandboxed rendering of user-authored subjects and bodies.

Authors write a tiny template language on top of Markdown:

- merge fields ``{{ first_name }}`` from `VARIABLES`, and custom fields as ``{{ custom.industry }}``
  (or ``{{ custom["Company size"] }}`` when the key is not an identifier);
- filters from `FILTERS`: ``{{ first_name | default("there") | title }}``;
- conditions: ``{% if company %}...{% elif ... %}...{% else %}...{% endif %}`` with ``not``, ``and``,
  ``or``, comparisons (``==``, ``!=``, ``<``, ``in``...) and ``a if b else c``.

Everything else Jinja offers (attribute access, calls, loops, arithmetic, ``set``, ``include``...) is
rejected by `validate_template` at save time with a message naming the construct and its line.
Rendering still runs in an `ImmutableSandboxedEnvironment` with no globals and only our filters, so a
template that somehow skipped validation cannot reach Python objects either.

A contact value that is missing, ``None`` or blank is *unresolved*: ``{{ first_name }}`` alone makes
`render_message` raise `UnresolvedVariable` (the worker stops that one send instead of mailing
"Hi ,"), while ``default(...)`` supplies a fallback and ``{% if first_name %}`` is simply false.

The body is Markdown. The plain-text part is the merged Markdown source. For the HTML part the body is
merged with a placeholder in place of every value; that Markdown is rendered by markdown-it-py with raw
HTML off, once per distinct result (so once per step, not once per contact: `_layout` caches it), and
each contact's values are put into the HTML afterwards: HTML-escaped in text, alt and title, and in
link and image URLs normalized and checked exactly as markdown-it does it. A value is data, never
markup: it cannot add links, emphasis, lists or tags, nor change how the author's Markdown is read.
Then nh3 sanitizes every message with an email-safe allowlist. What the placeholders cannot stand for
exactly (a value in code, in an autolink, a URL value with spaces...) is rendered as before: the values
escaped *as Markdown* into the source, one contact at a time.
"""

import difflib
import functools
import html as html_lib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import nh3
from jinja2 import Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import do_capitalize, do_default, do_lower, do_title, do_trim, do_upper
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

VARIABLES = frozenset(
    {
        "first_name",
        "last_name",
        "full_name",
        "email",
        "company",
        "title",
        "linkedin_url",
        "timezone",
        "sender_name",
        "unsubscribe_url",
    }
)
CUSTOM = "custom"
FILTERS = frozenset({"default", "title", "upper", "lower", "capitalize", "trim"})
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_OUTPUT_CHARS = 1024 * 1024
MAX_CUSTOM_KEY = 100
# Generous for real templates, and they bound compile time: Jinja's code generation costs ~50-100 us
# per node and grows quadratically with the depth of one expression (a 60-filter chain takes 0.2 s).
MAX_NODES = 2000
MAX_EXPRESSION_DEPTH = 16
MAX_FILTER_CHAIN = 4
MAX_IF_NESTING = 16

DEFAULT_UNSUBSCRIBE_FOOTER = "---\n\nNot interested? [Unsubscribe]({{ unsubscribe_url }})."

# Filter name -> most positional constant arguments it may take; keyword arguments are never allowed.
_FILTER_ARITY = {"default": 2, "title": 0, "upper": 0, "lower": 0, "capitalize": 0, "trim": 1}
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Filter,
    nodes.If,
    nodes.Compare,
    nodes.Operand,
    nodes.Not,
    nodes.And,
    nodes.Or,
    nodes.CondExpr,
)
# Why a construct is refused, in words an author understands.
_REFUSALS = (
    ((nodes.Getattr, nodes.Getitem), "attribute and item access is not allowed (custom fields are custom.<field>)"),
    ((nodes.Call,), "function and method calls are not allowed"),
    ((nodes.For,), "loops ({% for %}) are not allowed"),
    (
        (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends),
        "{% include %}, {% import %} and {% extends %} are not allowed",
    ),
    ((nodes.Assign, nodes.AssignBlock), "{% set %} is not allowed"),
    ((nodes.Macro, nodes.CallBlock), "macros are not allowed"),
    (
        (nodes.BinExpr, nodes.Concat, nodes.UnaryExpr),
        "arithmetic and string operators (+ - * / % ** ~) are not allowed",
    ),
    ((nodes.Test,), "tests ('is ...') are not allowed; write {% if field %} instead"),
    ((nodes.List, nodes.Tuple, nodes.Dict), "lists, tuples and dicts are not allowed"),
    ((nodes.Block,), "{% block %} is not allowed"),
    ((nodes.FilterBlock,), "{% filter %} blocks are not allowed"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Key for the per-render state in the Jinja context: the space makes it impossible to name in a template.
_STATE_KEY = "drumbeat render-state"
# CommonMark lets any ASCII punctuation be backslash-escaped, which turns it into a literal character.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


class TemplateError(ValueError):
    """A template cannot be saved or rendered. `message` is meant for the author; `lineno` may be None."""

    def __init__(self, message: str, *, lineno: int | None = None):
        self.message = f"line {lineno}: {message}" if lineno else message
        self.lineno = lineno
        super().__init__(self.message)


class RenderError(TemplateError):
    """A valid template failed for this context (e.g. comparing text with a number)."""


class UnresolvedVariable(RenderError):
    """Merge fields with no value and no default. `names` keeps first-use order ('custom.x' for custom fields)."""

    def __init__(self, names):
        self.names = tuple(names)
        first = self.names[0] if self.names else "first_name"
        super().__init__(
            f"no value for {', '.join(self.names)} "
            f'(give a fallback, e.g. {{{{ {first} | default("...") }}}}, or fill in the contact)'
        )


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class Preview:
    """A rendering for the dashboard: unresolved fields are shown marked, never raised."""

    subject: str
    text: str
    html: str
    unresolved: tuple[str, ...]


def validate_template(text: str) -> None:
    """Raise `TemplateError` naming the first problem if `text` is not an allowed template; else return None.

    Checks, in order: size (<= 64 KB of UTF-8), Jinja syntax, then every node of the parsed tree against
    the allowlist (nodes, filters and their arguments, variable names, custom field keys), and the limits
    on complexity (2,000 nodes, expressions 16 deep, 4 chained filters, {% if %} 16 deep).
    """
    _analyze(text)


def variables_used(text: str) -> set[str]:
    """The merge fields `text` refers to (`custom.<key>` for custom fields). Raises `TemplateError` if invalid."""
    return set(_analyze(text))


def render_message(
    subject: str,
    body: str,
    context: Mapping,
    *,
    html: bool = True,
    unsubscribe_footer: str | None = DEFAULT_UNSUBSCRIBE_FOOTER,
) -> RenderedMessage:
    """Render one email for one contact.

    `context` holds plain values: the keys of `VARIABLES` and `custom` (a dict of custom fields); other
    keys are ignored, as are values that are not str/int/float/bool. Blank strings count as missing, and
    `full_name` is derived from first and last name when absent (see `build_context`).

    When the body never uses `unsubscribe_url`, `unsubscribe_footer` (Markdown, same template rules) is
    appended so every email carries an unsubscribe link; pass None to opt out.

    Returns subject (one line, unescaped), text (the merged Markdown) and html (sanitized; None when
    `html` is False). Raises `TemplateError` for an invalid template, `UnresolvedVariable` listing every
    field that has no value and no default, and `RenderError` for other failures (output over 1 MB...).
    """
    body = _with_footer(body, unsubscribe_footer)
    values = _prepare(context)
    subject_out, missing = _render(subject, "text", values)
    merged = _render_slots(body, values, missing)
    if missing:
        raise UnresolvedVariable(missing)
    html_out = _body_html(merged.skeleton, merged.outputs) if html else None
    return RenderedMessage(subject=subject_out, text=merged.text(), html=html_out)


def preview(
    subject: str, body: str, context: Mapping, *, unsubscribe_footer: str | None = DEFAULT_UNSUBSCRIBE_FOOTER
) -> Preview:
    """Render like `render_message`, but show unresolved fields instead of raising.

    In subject and text an unresolved field appears as its source (``{{ first_name }}``); in html as
    ``<mark class="unresolved">{{ first_name }}</mark>``. `unresolved` lists them in first-use order.
    Still raises `TemplateError`/`RenderError` for an invalid template or a failing render.
    """
    body = _with_footer(body, unsubscribe_footer)
    values = _prepare(context)
    subject_out, missing = _render(subject, "text", values, marker=_source_marker)
    merged = _render_slots(body, values, missing, marker=_source_marker)
    # In the HTML an unresolved field is a token of letters and digits between private-use characters
    # (inert text in Markdown and HTML), turned into a mark after sanitizing; the nonce makes it unforgeable.
    nonce = secrets.token_hex(6)
    html_values = list(merged.outputs)
    for number, index in enumerate(merged.unresolved):
        html_values[index] = f"\ue000{nonce}{number}\ue001"
    html_out = re.sub(
        f"\ue000{nonce}(\\d+)\ue001",
        lambda m: (
            f'<mark class="unresolved">{html_lib.escape(merged.outputs[merged.unresolved[int(m.group(1))]])}</mark>'
        ),
        _body_html(merged.skeleton, html_values),
    )
    return Preview(subject=subject_out, text=merged.text(), html=html_out, unresolved=tuple(missing))


def build_context(contact, *, sender_name: str | None = None, unsubscribe_url: str | None = None) -> dict:
    """A render context from any object with contact attributes (an ORM row, a dataclass...).

    Reads first_name, last_name, email, company, title, linkedin_url, timezone and custom_fields when
    present; returns a plain dict, so no ORM object ever reaches the template engine.
    """
    context = {
        name: getattr(contact, name, None)
        for name in ("first_name", "last_name", "email", "company", "title", "linkedin_url", "timezone")
    }
    context[CUSTOM] = dict(getattr(contact, "custom_fields", None) or {})
    context["sender_name"] = sender_name
    context["unsubscribe_url"] = unsubscribe_url
    return context


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, narrowed: no operators, and attribute access only reads custom-field dict keys."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def call_binop(self, context, operator, left, right):
        raise SecurityError(f"operator {operator!r} is not allowed")

    def call_unop(self, context, operator, arg):
        raise SecurityError(f"operator {operator!r} is not allowed")

    def getattr(self, obj, attribute):
        return self._custom_field(obj, attribute)

    def getitem(self, obj, argument):
        return self._custom_field(obj, argument)

    def _custom_field(self, obj, key):
        # Plain dict lookups only: `custom.items` must be the field "items", never the dict method.
        if isinstance(obj, dict) and isinstance(key, str) and not key.startswith("_") and key in obj:
            return obj[key]
        return self.undefined(name=f"{CUSTOM}.{key}")


class _Undefined(Undefined):
    """A missing value: false in conditions, and comparisons with it are false instead of an error."""

    __slots__ = ()

    def _false(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _false


def _keep_undefined(function: Callable) -> Callable:
    """Let a missing value pass through a case filter, so `default` later in the chain still applies."""

    @functools.wraps(function)
    def wrapper(value, *args):
        return value if isinstance(value, Undefined) else function(value, *args)

    return wrapper


def _make_environment(finalize: Callable) -> _Environment:
    env = _Environment(
        autoescape=False,
        undefined=_Undefined,
        finalize=finalize,
        # No trim_blocks: it would join lines after an inline `{% endif %}`, which authors write a lot.
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.clear()
    env.tests.clear()
    env.filters = {
        "default": do_default,
        "title": _keep_undefined(do_title),
        "upper": _keep_undefined(do_upper),
        "lower": _keep_undefined(do_lower),
        "capitalize": _keep_undefined(do_capitalize),
        "trim": _keep_undefined(do_trim),
    }
    return env


class _State:
    __slots__ = ("marker", "missing", "output_chars", "outputs", "slot_chars", "unresolved")

    def __init__(self, missing: list[str], marker: Callable[[str], str]):
        self.missing = missing
        self.marker = marker
        # "slots" mode: what each {{ ... }} printed, in order; which of them were unresolved; sizes.
        self.outputs: list[str] = []
        self.unresolved: list[int] = []
        self.output_chars = 0
        self.slot_chars = 0


def _output(context: Context, value) -> str:
    if isinstance(value, Undefined):
        name = value._undefined_name
        if name is None:
            # `{{ "x" if cond }}` with a false condition: Jinja's undefined carries no name; it means "nothing".
            return ""
        state: _State | None = context.get(_STATE_KEY)
        if state is None:
            return ""
        if name not in state.missing:
            state.missing.append(name)
        return state.marker(name)
    if value is None:
        return ""
    return str(value)


@pass_context
def _finalize_text(context: Context, value) -> str:
    return _output(context, value)


@pass_context
def _finalize_slots(context: Context, value) -> str:
    """Print a slot instead of the value; the value goes to the render state (see `_render_slots`)."""
    state: _State | None = context.get(_STATE_KEY)
    text = _output(context, value)
    if state is None:
        return text
    if isinstance(value, Undefined) and value._undefined_name is not None:
        state.unresolved.append(len(state.outputs))
    slot = _slot(len(state.outputs))
    state.outputs.append(text)
    state.output_chars += len(text)
    state.slot_chars += len(slot)
    return slot


_ENVIRONMENTS = {"text": _make_environment(_finalize_text), "slots": _make_environment(_finalize_slots)}
# A slot stands for the n-th printed value. Letters and digits only, so Markdown reads it as a word
# (and keeps it intact in URLs); the per-process nonce keeps authors and contacts from writing one.
_SLOT_PREFIX = "dbv" + secrets.token_hex(8)
_SLOT = re.compile(_SLOT_PREFIX + r"(\d+)x")


def _slot(index: int) -> str:
    return f"{_SLOT_PREFIX}{index}x"


class _SlotMarkdown(MarkdownIt):
    """markdown-it that keeps a link or image URL holding a slot as written (unescaped, not yet
    normalized or validated): `_fill` does both for each contact once the values are in."""

    def normalizeLink(self, url: str) -> str:
        return url if _SLOT_PREFIX in url else super().normalizeLink(url)

    def validateLink(self, url: str) -> bool:
        return True if _SLOT_PREFIX in url else super().validateLink(url)


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True})
_SLOT_MARKDOWN = _SlotMarkdown("commonmark", {"html": False, "breaks": True})
_ALLOWED_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "u",
    "ul",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "ol": {"start"}}


def _markdown_to_html(source: str) -> str:
    return _sanitize(_MARKDOWN.render(source))


# Built once: nh3.clean() would rebuild the same sanitizer (and convert these sets) on every call.
_SANITIZER = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    attributes=_ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def _sanitize(html: str) -> str:
    return _SANITIZER.clean(html)


def _with_footer(body: str, footer: str | None) -> str:
    if footer is None or "unsubscribe_url" in variables_used(body):
        return body
    return body.rstrip("\n") + "\n\n" + footer + "\n"


def _source_marker(name: str) -> str:
    return "{{ " + name + " }}"


def _discard(name: str) -> str:
    return ""


def _render(
    source: str, mode: str, values: dict, missing: list[str] | None = None, *, marker: Callable[[str], str] = _discard
) -> tuple[str, list[str]]:
    """Render `source` in `mode`; returns the output and the unresolved names (appended to `missing`)."""
    output, state = _generate(source, mode, values, missing, marker)
    return output, state.missing


@dataclass(frozen=True)
class _Merged:
    """A body rendered in "slots" mode: the skeleton has `_slot(i)` where the i-th value was printed."""

    skeleton: str
    outputs: tuple[str, ...]
    unresolved: tuple[int, ...]  # indexes into outputs

    def text(self) -> str:
        return _SLOT.sub(lambda m: self.outputs[int(m.group(1))], self.skeleton)


def _render_slots(
    source: str, values: dict, missing: list[str] | None = None, *, marker: Callable[[str], str] = _discard
) -> _Merged:
    """Render `source` with a slot for every printed value (appending unresolved names to `missing`)."""
    skeleton, state = _generate(source, "slots", values, missing, marker)
    if skeleton.count(_SLOT_PREFIX) != len(state.outputs):
        # Only a template holding this process's secret nonce could get here.
        raise RenderError("could not render: the template contains a reserved sequence")
    return _Merged(skeleton, tuple(state.outputs), tuple(state.unresolved))


def _generate(
    source: str, mode: str, values: dict, missing: list[str] | None, marker: Callable[[str], str]
) -> tuple[str, _State]:
    template = _compiled(source, mode)
    state = _State([] if missing is None else missing, marker)
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate({**values, _STATE_KEY: state}):
            size += len(chunk)
            # The size of the merged text: in "slots" mode the values count, not their slots.
            if size - state.slot_chars + state.output_chars > MAX_OUTPUT_CHARS:
                raise RenderError(f"the rendered text is larger than {MAX_OUTPUT_CHARS // 1024 // 1024} MB")
            chunks.append(chunk)
    except TemplateError:
        raise
    except Exception as exc:  # a valid template failing on this data, e.g. '<' between text and a number
        raise RenderError(f"could not render: {exc}") from None
    return "".join(chunks), state


def _escape_markdown(value: str) -> str:
    """A one-line value as Markdown source that reads as exactly that text."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", value)


def _body_html(skeleton: str, outputs: Sequence[str]) -> str:
    """The sanitized HTML of a body rendered in slots mode, with `outputs` as its values.

    Values are one line (line breaks become spaces). A value with no space at either end stays a slot
    in the Markdown, which is rendered once per distinct skeleton (`_layout`) and filled in afterwards
    (`_fill`); other values (blank ones, padded defaults) are escaped into the Markdown, as are all of
    them when the layout cannot stand for this contact exactly (see `_layout` and `_fill`).
    """
    values = [" ".join(output.splitlines()) for output in outputs]

    def slot_or_escaped(m: re.Match) -> str:
        value = values[int(m.group(1))]
        return m.group(0) if value and not value[0].isspace() and not value[-1].isspace() else _escape_markdown(value)

    source = _SLOT.sub(slot_or_escaped, skeleton)
    layout = _layout(source) if len(source) <= _MAX_LAYOUT_CHARS else None
    html = _fill(layout, values) if layout is not None else None
    if html is not None:
        return _sanitize(html)
    source = _SLOT.sub(lambda m: _escape_markdown(values[int(m.group(1))]), skeleton)
    if len(source) > MAX_OUTPUT_CHARS:
        raise RenderError(f"the rendered text is larger than {MAX_OUTPUT_CHARS // 1024 // 1024} MB")
    return _markdown_to_html(source)


# Pieces of a layout: literal HTML, a value in text (or alt/title), a URL holding values.
_LITERAL, _TEXT, _URL = 0, 1, 2
_MAX_LAYOUT_CHARS = 4 * MAX_TEMPLATE_BYTES
# markdown-it escapes '"' in text and attribute values, so `href="` only ever starts an attribute.
_LAYOUT_HOLE = re.compile(rf'\b((?:href|src)=")([^"]*{_SLOT_PREFIX}[^"]*)"|{_SLOT_PREFIX}(\d+)x')
# A value with one of these in a link destination would end it (or the link) early.
_ENDS_DESTINATION = re.compile(r"[\x00-\x20\x7f]")
# URLs that markdown-it's normalizeLink returns unchanged: http(s), an ASCII host name or address,
# and only characters it never escapes (no '%', no '@').
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9;/?:&=+$,\-_.!~*'()#]*)?")
# Where a slot may stand for a value: in text, and in these attributes.
_SLOT_ATTRIBUTES = frozenset({"href", "src", "title"})
_SLOT_TOKENS = frozenset({"inline", "text", "image"})


@functools.lru_cache(maxsize=128)
def _layout(source: str) -> tuple[tuple[int, object], ...] | None:
    """The HTML of Markdown `source` (with slots) as literal pieces and holes, or None when a slot sits
    where a value would be read differently from a word (code, an autolink, a code block's info...)."""
    env: dict = {}
    tokens = _SLOT_MARKDOWN.parse(source, env)
    # A reference definition is checked where it is written, even when no link uses it.
    if _SLOT_PREFIX.upper() in str(env.get("references", "")).upper():
        return None
    stack = list(tokens)
    while stack:
        token = stack.pop()
        if _SLOT_PREFIX in token.content and token.type not in _SLOT_TOKENS:
            return None
        if _SLOT_PREFIX in token.info or any(
            _SLOT_PREFIX in str(value) and name not in _SLOT_ATTRIBUTES for name, value in token.attrs.items()
        ):
            return None
        if token.markup == "autolink" and _SLOT_PREFIX in str(token.attrs.get("href", "")):
            return None
        stack.extend(token.children or ())
    html = _SLOT_MARKDOWN.renderer.render(tokens, _SLOT_MARKDOWN.options, env)
    pieces: list[tuple[int, object]] = []
    start = 0
    for m in _LAYOUT_HOLE.finditer(html):
        if m.group(3) is not None:
            pieces += [(_LITERAL, html[start : m.start()]), (_TEXT, int(m.group(3)))]
        else:
            # The URL as markdown-it read it (`_SlotMarkdown` left it unnormalized); it escaped it for HTML.
            pieces += [(_LITERAL, html[start : m.start()] + m.group(1)), (_URL, html_lib.unescape(m.group(2)))]
            pieces.append((_LITERAL, '"'))
        start = m.end()
    pieces.append((_LITERAL, html[start:]))
    return tuple(pieces)


def _fill(layout: tuple[tuple[int, object], ...], values: list[str]) -> str | None:
    """The layout's HTML with `values` in (before sanitizing), as markdown-it would have written it with
    the values in the source; None when a URL would not be the same link (see `_fill_url`)."""
    out = []
    for kind, piece in layout:
        if kind == _LITERAL:
            out.append(piece)
        elif kind == _TEXT:
            out.append(escapeHtml(values[piece].replace("\0", "\ufffd")))
        else:
            url = _fill_url(piece, values)
            if url is None:
                return None
            out.append(escapeHtml(url))
    return "".join(out)


def _fill_url(raw: str, values: list[str]) -> str | None:
    """The link or image URL `raw` with its values in, normalized as markdown-it does; None when a value
    would have ended the destination or markdown-it would refuse the URL (the text is then no link)."""
    ends = False

    def value(m: re.Match) -> str:
        nonlocal ends
        text = values[int(m.group(1))]
        ends = ends or _ENDS_DESTINATION.search(text) is not None
        return text

    url = _SLOT.sub(value, raw)
    # Most URLs (an unsubscribe link, say) are already what normalizeLink would make of them.
    if not _PLAIN_URL.fullmatch(url):
        url = _MARKDOWN.normalizeLink(url)
    if ends or not _MARKDOWN.validateLink(url):
        return None
    return url


@functools.lru_cache(maxsize=256)
def _compiled(source: str, mode: str):
    _analyze(source)
    try:
        return _ENVIRONMENTS[mode].from_string(source)
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise TemplateError(f"the template is too complex to compile ({type(exc).__name__})") from None


@functools.lru_cache(maxsize=256)
def _analyze(text: str) -> tuple[str, ...]:
    """Validate `text` and return the variables it uses, in first-use order."""
    if not isinstance(text, str):
        raise TemplateError("a template must be text")
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"the template is {size / 1024:.0f} KB; the limit is {MAX_TEMPLATE_BYTES // 1024} KB")
    try:
        tree = _ENVIRONMENTS["text"].parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", lineno=exc.lineno) from None
    except RecursionError:
        raise TemplateError("the template is nested too deeply") from None
    except Exception as exc:  # the lexer raises plain errors too, e.g. for a 5,000-digit number
        raise TemplateError(f"the template cannot be read ({str(exc)[:120]})") from None
    used: dict[str, None] = {}
    _check(tree, used)
    return tuple(used)


def _check(tree: nodes.Template, used: dict[str, None]) -> None:
    # Iterative walk: a hostile template must not be able to exhaust the Python stack here. Each entry
    # is (node, depth inside the current expression, {% if %} nesting level).
    stack: list[tuple[nodes.Node, int, int]] = [(child, 0, 0) for child in tree.body]
    seen = 0
    while stack:
        node, depth, ifs = stack.pop()
        lineno = getattr(node, "lineno", None)
        seen += 1
        if seen > MAX_NODES:
            raise TemplateError(
                f"the template is too complex (more than {MAX_NODES} fields, filters and conditions); shorten it"
            )
        if depth > MAX_EXPRESSION_DEPTH:
            raise TemplateError("an expression is nested too deeply", lineno=lineno)
        if isinstance(node, (nodes.Getattr, nodes.Getitem)) and _is_custom(node.node):
            used[f"{CUSTOM}.{_custom_key(node)}"] = None
            continue
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateError(_refusal(node), lineno=lineno)
        if isinstance(node, nodes.Name):
            _check_name(node)
            used[node.name] = None
        elif isinstance(node, nodes.Const):
            if not isinstance(node.value, (str, int, float, bool, type(None))):
                raise TemplateError("only text, number and true/false constants are allowed", lineno=lineno)
        elif isinstance(node, nodes.Filter):
            _check_filter(node)
            stack.append((node.node, depth + 1, ifs))
        elif isinstance(node, nodes.Output):
            stack.extend((child, 1, ifs) for child in node.nodes)
        elif isinstance(node, nodes.If):
            # elif branches compile to `elif`, not to nested blocks: they share their `if`'s level.
            level = ifs + 1
            if level > MAX_IF_NESTING:
                raise TemplateError(f"{{% if %}} blocks nest deeper than {MAX_IF_NESTING}", lineno=lineno)
            for branch in (node, *node.elif_):
                seen += branch is not node
                stack.append((branch.test, 1, level))
                stack.extend((child, 0, level) for child in branch.body)
            stack.extend((child, 0, level) for child in node.else_)
        else:
            stack.extend((child, depth + 1, ifs) for child in node.iter_child_nodes())


def _refusal(node: nodes.Node) -> str:
    for classes, message in _REFUSALS:
        if isinstance(node, classes):
            return message
    return f"'{type(node).__name__}' is not allowed in a template"


def _is_custom(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == CUSTOM


def _custom_key(node: nodes.Getattr | nodes.Getitem) -> str:
    if isinstance(node, nodes.Getattr):
        key = node.attr
    elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        key = node.arg.value
    else:
        raise TemplateError('custom fields are written custom.<field> or custom["<field>"]', lineno=node.lineno)
    if not key or len(key) > MAX_CUSTOM_KEY or key.startswith("_") or _CONTROL.search(key):
        raise TemplateError(
            f"'{key[:MAX_CUSTOM_KEY]}' is not a valid custom field name "
            f"(1-{MAX_CUSTOM_KEY} characters, not starting with '_')",
            lineno=node.lineno,
        )
    return key


def _check_name(node: nodes.Name) -> None:
    if node.name in VARIABLES:
        return
    if node.name == CUSTOM:
        raise TemplateError("custom fields are written custom.<field>, e.g. {{ custom.industry }}", lineno=node.lineno)
    close = difflib.get_close_matches(node.name, VARIABLES, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise TemplateError(
        f"unknown field '{node.name}'; {hint}available: {', '.join(sorted(VARIABLES))}, custom.<field>",
        lineno=node.lineno,
    )


def _check_filter(node: nodes.Filter) -> None:
    if node.name not in FILTERS:
        raise TemplateError(
            f"filter '{node.name}' is not allowed (available: {', '.join(sorted(FILTERS))})", lineno=node.lineno
        )
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        raise TemplateError(f"filter '{node.name}' takes only plain arguments", lineno=node.lineno)
    chain, inner = 1, node.node
    while isinstance(inner, nodes.Filter):
        chain, inner = chain + 1, inner.node
    if chain > MAX_FILTER_CHAIN:
        raise TemplateError(f"at most {MAX_FILTER_CHAIN} filters may be chained", lineno=node.lineno)
    if len(node.args) > _FILTER_ARITY[node.name]:
        raise TemplateError(f"too many arguments for filter '{node.name}'", lineno=node.lineno)
    for arg in node.args:
        if not isinstance(arg, nodes.Const) or not isinstance(arg.value, (str, int, float, bool, type(None))):
            raise TemplateError(
                f"arguments of '{node.name}' must be constants, e.g. default(\"there\")", lineno=node.lineno
            )


def _scalar(value):
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, (bool, int, float)):
        return value
    return None


def _prepare(context: Mapping) -> dict:
    """Plain, trimmed values for the template: unknown keys and non-scalar values are dropped."""
    values = {}
    for name in VARIABLES:
        value = _scalar(context.get(name))
        if value is not None:
            values[name] = value
    if "full_name" not in values:
        parts = [str(values[key]) for key in ("first_name", "last_name") if key in values]
        if parts:
            values["full_name"] = " ".join(parts)
    custom = {}
    raw = context.get(CUSTOM)
    if isinstance(raw, Mapping):
        for key, item in raw.items():
            value = _scalar(item)
            if isinstance(key, str) and not key.startswith("_") and value is not None:
                custom[key] = value
    values[CUSTOM] = custom
    return values
