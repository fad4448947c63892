from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from webapp.engine import render
from webapp.engine.render import (
    MAX_TEMPLATE_BYTES,
    Preview,
    RenderError,
    TemplateError,
    UnresolvedVariable,
    build_context,
    preview,
    render_message,
    validate_template,
    variables_used,
)

UNSUBSCRIBE = "https://drumbeat.test/u/tok_en-1"
ADA = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "company": "Analytical Engines",
    "title": "Mathematician",
    "custom": {"industry": "Computing", "Company size": "11-50", "employees": 42, "vip": True},
    "sender_name": "Charles",
    "unsubscribe_url": UNSUBSCRIBE,
}

# reliability-anchors.md section 2, plus listmonk's `env` helper and a few variants.
SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self.__init__ }}",
    "{{ config }}",
    "{{ request.environ }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__class__}'.format_map({'0':1}) }}",
    "{{ ('{0.__class__}'|attr('format'))(1) }}",
    "{{ lipsum.__globals__ }}",
    "{{ range(10**9)|length }}",
    "{{ ('a'*10**8)|length }}",
    "{{ 9**9**9 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% include 'x' %}",
    "{% import 'x' as y %}",
    "{% extends 'x' %}",
    "{{ env('DATABASE_URL') }}",
    "{{ first_name.__class__ }}",
    "{{ first_name['__class__'] }}",
    "{{ custom.__class__ }}",
    "{{ custom['__init__'] }}",
    "{{ custom.items() }}",
    "{{ custom.a.b }}",
    "{{ first_name|attr('upper') }}",
    "{{ first_name|map('upper')|list }}",
    "{{ first_name|format(1) }}",
    "{{ first_name|default(first_name.__class__) }}",
    "{{ first_name|default(x=1) }}",
    "{% set x = 1 %}{{ x }}",
    "{% macro m() %}{% endmacro %}",
    "{% filter upper %}x{% endfilter %}",
    "{% block b %}{% endblock %}",
    "{% with a = 1 %}{{ a }}{% endwith %}",
    "{{ first_name ~ last_name }}",
    "{{ -first_name }}",
    "{{ [1, 2] }}",
    "{{ {'a': 1} }}",
    "{{ first_name is defined }}",
    "{{ namespace() }}",
    "{{ dict(a=1) }}",
    "{{ joiner() }}",
]


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict]]:
    """The tags and attributes a browser would build from `html` (escaped text is not an element)."""
    parser = _Elements()
    parser.feed(html)
    return parser.elements


class TestValidation:
    @pytest.mark.parametrize("payload", SSTI_PAYLOADS)
    def test_it_rejects_every_ssti_payload_at_save_time(self, payload):
        with pytest.raises(TemplateError):
            validate_template(payload)

    @pytest.mark.parametrize("payload", SSTI_PAYLOADS)
    def test_it_never_renders_an_ssti_payload(self, payload):
        with pytest.raises(TemplateError):
            render_message("s", payload, ADA)
        with pytest.raises(TemplateError):
            preview(payload, "body", ADA)

    def test_it_accepts_the_whole_allowed_language(self):
        validate_template(
            'Hi {{ first_name | default("there") | title }}{% if company %} from {{ company | trim }}{% endif %},\n'
            "{% if not title %}x{% elif custom.employees > 10 and custom.vip or company == 'x' %}y"
            "{% else %}z{% endif %} {{ 'VIP' if custom.vip else '' }} {{ custom[\"Company size\"] | upper }}"
            "{% if 'Eng' in company %}{{ last_name | lower | capitalize }}{% endif %}{# a comment #}"
            "{% raw %}{{ not a field }}{% endraw %}"
        )

    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            ("{{ frist_name }}", "line 1: unknown field 'frist_name'; did you mean 'first_name'?"),
            ("ok\n{{ config }}", "line 2: unknown field 'config'"),
            ("{{ first_name | attr('x') }}", "filter 'attr' is not allowed"),
            ("{{ first_name | truncate(5) }}", "filter 'truncate' is not allowed"),
            ("{{ first_name | upper(1) }}", "too many arguments for filter 'upper'"),
            ("{{ first_name | default(company) }}", "arguments of 'default' must be constants"),
            ("{% for x in y %}{% endfor %}", "loops ({% for %}) are not allowed"),
            ("{{ 2 * 3 }}", "arithmetic and string operators"),
            ("{{ custom }}", "custom fields are written custom.<field>"),
            ("{{ custom[first_name] }}", 'custom fields are written custom.<field> or custom["<field>"]'),
            ("{{ company.name }}", "attribute and item access is not allowed"),
            ("{% include 'x' %}", "{% include %}"),
            ("{{ first_name ", "line 1: unexpected end of template"),
            ("{% if first_name %}x", "line 1: Unexpected end of template"),
        ],
    )
    def test_it_names_the_problem(self, template, expected):
        with pytest.raises(TemplateError) as caught:
            validate_template(template)
        assert expected in caught.value.message

    def test_it_reports_the_line_of_the_problem(self):
        with pytest.raises(TemplateError) as caught:
            validate_template("Hi\n\nthere {{ first_name.upper() }}")
        assert caught.value.lineno == 3

    def test_it_accepts_a_template_of_exactly_the_size_limit(self):
        validate_template("a" * MAX_TEMPLATE_BYTES)

    def test_it_rejects_a_template_over_the_size_limit_counting_utf8_bytes(self):
        with pytest.raises(TemplateError, match="limit is 64 KB"):
            validate_template("é" * (MAX_TEMPLATE_BYTES // 2 + 1))

    def test_it_rejects_deep_nesting_without_crashing(self):
        with pytest.raises(TemplateError, match="nested too deeply"):
            validate_template("{{ " + "(" * 5000 + "first_name" + ")" * 5000 + " }}")
        with pytest.raises(TemplateError, match="nested too deeply"):
            validate_template("{{ first_name" + " or first_name" * 20 + " }}")
        validate_template("{{ first_name" + " or first_name" * 10 + " }}")
        with pytest.raises(TemplateError, match="at most 4 filters"):
            validate_template("{{ first_name" + " | upper" * 5 + " }}")
        validate_template("{{ first_name | default('x') | trim | title | upper }}")
        with pytest.raises(TemplateError, match="nest deeper than 16"):
            validate_template("{% if first_name %}" * 17 + "x" + "{% endif %}" * 17)
        validate_template("{% if first_name %}" * 16 + "x" + "{% endif %}" * 16)

    def test_a_long_elif_chain_is_not_nesting(self):
        branches = "".join(f"{{% elif custom.n == {number} %}}{number}" for number in range(40))
        template = "{% if not custom.n %}none" + branches + "{% else %}many{% endif %}"
        assert render_message(template, "x", {**ADA, "custom": {"n": 39}}).subject == "39"

    def test_it_rejects_huge_number_literals_cleanly(self):
        with pytest.raises(TemplateError, match="cannot be read"):
            validate_template("{{ 1" + "0" * 5000 + " }}")

    def test_it_rejects_custom_keys_that_could_reach_internals(self):
        for template in (
            "{{ custom._secret }}",
            "{{ custom[''] }}",
            "{{ custom['a\x00b'] }}",
            "{{ custom['" + "k" * 101 + "'] }}",
        ):
            with pytest.raises(TemplateError, match="not a valid custom field name"):
                validate_template(template)

    def test_it_rejects_non_text(self):
        with pytest.raises(TemplateError):
            validate_template(b"{{ first_name }}")

    def test_variables_used_lists_fields_and_custom_fields(self):
        used = variables_used(
            "{{ first_name }}{% if company %}{{ custom.industry }}{% endif %}"
            "{{ custom['Company size'] }}{{ 'x' if title }}"
        )
        assert used == {"first_name", "company", "custom.industry", "custom.Company size", "title"}

    def test_variables_used_rejects_an_invalid_template(self):
        with pytest.raises(TemplateError):
            variables_used("{{ config }}")


class TestRenderMessage:
    def test_it_merges_fields_into_subject_text_and_html(self):
        message = render_message(
            "Quick question, {{ first_name }}",
            "Hi {{ first_name }},\n\nHow is **{{ company }}**?\n\n{{ sender_name }}",
            ADA,
        )
        assert message.subject == "Quick question, Ada"
        assert message.text.startswith("Hi Ada,\n\nHow is **Analytical Engines**?\n\nCharles")
        assert "<p>Hi Ada,</p>" in message.html
        assert "<strong>Analytical Engines</strong>" in message.html

    def test_default_supplies_a_fallback_for_a_missing_field(self):
        message = render_message('Hi {{ first_name | default("there") }}', "x", {**ADA, "first_name": None})
        assert message.subject == "Hi there"

    @pytest.mark.parametrize("blank", [None, "", "   ", "\t\n"])
    def test_blank_values_count_as_missing(self, blank):
        message = render_message('Hi {{ first_name | default("there") | title }}', "x", {**ADA, "first_name": blank})
        assert message.subject == "Hi There"
        with pytest.raises(UnresolvedVariable):
            render_message("Hi {{ first_name }}", "x", {**ADA, "first_name": blank})

    def test_values_are_trimmed(self):
        assert render_message("Hi {{ first_name }}!", "x", {**ADA, "first_name": "  Ada \n"}).subject == "Hi Ada!"

    def test_case_filters_pass_a_missing_value_on_to_default(self):
        message = render_message('{{ first_name | title | default("friend") }}', "x", {**ADA, "first_name": None})
        assert message.subject == "friend"

    def test_it_raises_unresolved_variable_listing_every_missing_field_once(self):
        with pytest.raises(UnresolvedVariable) as caught:
            render_message(
                "Hi {{ first_name }}",
                "{{ company }} {{ first_name }} {{ custom.region }} {{ custom['Deal stage'] }}",
                {"unsubscribe_url": UNSUBSCRIBE},
            )
        assert caught.value.names == ("first_name", "company", "custom.region", "custom.Deal stage")
        assert "first_name, company" in caught.value.message
        assert isinstance(caught.value, RenderError)

    def test_a_field_used_only_in_a_condition_is_not_unresolved(self):
        message = render_message("Hi{% if company %} from {{ company }}{% endif %}", "x", {**ADA, "company": None})
        assert message.subject == "Hi"

    def test_if_elif_else_and_inline_if(self):
        template = (
            "{% if custom.employees > 100 %}big{% elif custom.employees > 10 %}mid{% else %}small{% endif %}"
            " {{ 'VIP' if custom.vip else 'regular' }} {{ 'yes' if company }}{{ 'no' if not company }}"
        )
        assert render_message(template, "x", ADA).subject == "mid VIP yes"
        assert render_message(template, "x", {**ADA, "custom": {}, "company": None}).subject == "small regular no"

    def test_a_comparison_with_a_missing_value_is_false(self):
        assert render_message("{% if custom.score > 5 %}hot{% else %}cold{% endif %}", "x", ADA).subject == "cold"

    def test_a_comparison_between_text_and_a_number_is_a_render_error(self):
        with pytest.raises(RenderError, match="could not render"):
            render_message("{% if company > 5 %}x{% endif %}", "x", ADA)

    def test_custom_fields_by_attribute_and_by_key(self):
        message = render_message(
            "{{ custom.industry }} / {{ custom['Company size'] }} / {{ custom.employees }}", "x", ADA
        )
        assert message.subject == "Computing / 11-50 / 42"

    def test_a_custom_field_named_like_a_dict_method_is_just_a_field(self):
        context = {**ADA, "custom": {"items": "widgets"}}
        assert render_message("{{ custom.items }}", "x", context).subject == "widgets"
        with pytest.raises(UnresolvedVariable, match=r"custom\.keys"):
            render_message("{{ custom.keys }}", "x", context)

    def test_non_scalar_values_are_ignored(self):
        context = {**ADA, "company": object(), "custom": {"tags": ["a"], "meta": {"x": 1}, "_private": "x"}}
        with pytest.raises(UnresolvedVariable) as caught:
            render_message("{{ company }}{{ custom.tags }}{{ custom.meta }}", "x", context)
        assert caught.value.names == ("company", "custom.tags", "custom.meta")

    def test_full_name_is_derived_when_absent(self):
        assert render_message("{{ full_name }}", "x", ADA).subject == "Ada Lovelace"
        assert render_message("{{ full_name }}", "x", {**ADA, "last_name": None}).subject == "Ada"
        assert render_message("{{ full_name }}", "x", {**ADA, "full_name": "Countess"}).subject == "Countess"

    def test_unicode_survives_every_part(self):
        context = {**ADA, "first_name": "Zoë", "company": "Ünïcode 株式会社 🚀"}
        message = render_message(
            "{{ first_name }} — {{ company }}", "Hallo {{ first_name | upper }} bei {{ company }}", context
        )
        assert message.subject == "Zoë — Ünïcode 株式会社 🚀"
        assert "Hallo ZOË bei Ünïcode 株式会社 🚀" in message.text
        assert "Hallo ZOË bei Ünïcode 株式会社 🚀" in message.html

    def test_a_contact_named_script_renders_inert(self):
        context = {**ADA, "first_name": "<script>alert(1)</script>", "company": '"><img src=x onerror=alert(1)>'}
        message = render_message("Hi {{ first_name }}", "Hi {{ first_name }} at {{ company }}", context)
        assert "<script" not in message.html
        assert "<img" not in message.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
        # The text part is plain text: it keeps the value as typed.
        assert "<script>alert(1)</script>" in message.text

    def test_contact_values_cannot_inject_markdown_links_or_formatting(self):
        context = {**ADA, "company": "[Win a prize](https://evil.example) **now**\n\n# Heading"}
        message = render_message("x", "At {{ company }}!", context, unsubscribe_footer=None)
        assert elements(message.html) == [("p", {})]
        assert message.html == "<p>At [Win a prize](https://evil.example) **now**  # Heading!</p>\n"

    def test_a_field_may_be_a_link_target(self):
        context = {**ADA, "custom": {"calendar": "https://cal.example/ada_l?x=1&y=(2)"}}
        message = render_message("x", "[Book a call]({{ custom.calendar }})", context)
        assert 'href="https://cal.example/ada_l?x=1&amp;y=(2)"' in message.html

    def test_raw_html_in_markdown_is_dropped(self):
        body = 'Hi <b onclick="x()">there</b>\n\n<script>alert(1)</script>\n\n<div hx-get="/api/keys">x</div>'
        message = render_message("s", body, ADA, unsubscribe_footer=None)
        assert [tag for tag, _ in elements(message.html)] == ["p", "p", "p"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html

    def test_dangerous_link_schemes_are_removed(self):
        body = "[a](javascript:alert(1)) [b](data:text/html,x) [c](vbscript:x) ![i](javascript:x)"
        message = render_message("s", body, ADA, unsubscribe_footer=None)
        urls = [value for _, attrs in elements(message.html) for value in attrs.values()]
        assert not [url for url in urls if url and not url.startswith(("http:", "https:", "mailto:"))]
        assert elements(message.html) == [("p", {})]

    def test_links_get_rel(self):
        message = render_message("s", "[site](https://example.com) <https://example.org>", ADA)
        assert '<a href="https://example.com" rel="noopener noreferrer">site</a>' in message.html
        assert '<a href="https://example.org" rel="noopener noreferrer">' in message.html

    def test_single_newlines_become_line_breaks(self):
        message = render_message("s", "Best,\nCharles", ADA)
        assert "<p>Best,<br>\nCharles</p>" in message.html

    def test_an_unsubscribe_footer_is_added_when_the_body_has_no_link(self):
        message = render_message("s", "Hello", ADA)
        assert message.text.endswith(f"[Unsubscribe]({UNSUBSCRIBE}).\n")
        assert f'<a href="{UNSUBSCRIBE}" rel="noopener noreferrer">Unsubscribe</a>' in message.html

    def test_no_footer_when_the_body_links_to_unsubscribe_itself(self):
        message = render_message("s", "Hello. [Stop]({{ unsubscribe_url }})", ADA)
        assert message.html.count(UNSUBSCRIBE) == 1
        assert "Not interested" not in message.text

    def test_a_missing_unsubscribe_url_blocks_the_send(self):
        with pytest.raises(UnresolvedVariable) as caught:
            render_message("s", "Hello", {**ADA, "unsubscribe_url": None})
        assert caught.value.names == ("unsubscribe_url",)

    def test_the_footer_can_be_turned_off(self):
        message = render_message("s", "Hello", {}, unsubscribe_footer=None)
        assert message.text == "Hello"

    def test_html_false_renders_only_text(self):
        message = render_message("s", "**Hi**", ADA, html=False)
        assert message.html is None
        assert message.text.startswith("**Hi**")

    def test_output_over_one_megabyte_is_refused(self):
        context = {**ADA, "custom": {"blob": "x" * 10_000}}
        with pytest.raises(RenderError, match="larger than 1 MB"):
            render_message("s", "{{ custom.blob }}" * 200, context)

    def test_many_fields_render_but_over_two_thousand_are_too_complex(self):
        message = render_message("s", "{{ first_name }}" * 1500, ADA, unsubscribe_footer=None)
        assert message.text == "Ada" * 1500
        with pytest.raises(TemplateError, match="too complex"):
            validate_template("{{title}}" * 2_001)

    def test_the_sandbox_refuses_operators_even_if_validation_were_bypassed(self):
        for mode in ("text", "slots"):
            env = render._ENVIRONMENTS[mode]
            assert env.globals == {}
            assert set(env.filters) == render.FILTERS
            with pytest.raises(SecurityError):
                env.from_string("{{ 9**9**9 }}").render()
            with pytest.raises(SecurityError):
                env.from_string("{{ 'a' * 100000000 }}").render()
            assert env.from_string("{{ custom.__class__ }}").render(custom={}) == ""


class _Content(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.attributes += [(tag, name, value) for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def content(html: str) -> _Content:
    parser = _Content()
    parser.feed(html)
    return parser


def per_contact_html(body: str, context: dict) -> str:
    """The HTML part as it was made before the per-step layout: every value escaped as Markdown into
    the merged source, and that source rendered and sanitized for this one contact."""
    values = render._prepare(context)
    merged = render._render_slots(body, values)
    source = render._SLOT.sub(
        lambda m: render._escape_markdown(" ".join(merged.outputs[int(m.group(1))].splitlines())), merged.skeleton
    )
    return render._markdown_to_html(source)


# Bodies with values in text, emphasis, link text, link and image URLs, alt and title text.
LAYOUT_BODIES = [
    "Hi {{ first_name }},\n\nHow is **{{ company }}**?",
    "[Book a call]({{ custom.calendar }}) or [our site](https://example.org/{{ custom.path }}?ref={{ first_name }})",
    '![{{ company }}](https://img.example/{{ custom.path }}.png "{{ title }}")',
    '[{{ first_name }}](https://example.org "{{ company }} & co")\n\n> {{ title }}\n\n- {{ company }}',
    "# {{ company }}\n\n{{ first_name }} {{ last_name }}\nsecond line",
]


class TestHtmlPerStep:
    """The HTML part: the Markdown is rendered once per step (per distinct body), and each contact's
    values go into that HTML afterwards, escaped; the result is what rendering each contact's
    Markdown gave, and a value never becomes markup."""

    def test_the_markdown_is_rendered_once_for_contacts_with_different_values(self):
        render._layout.cache_clear()
        body = "Hi **{{ first_name }}**, [book]({{ custom.calendar }})"
        ada = render_message("s", body, {**ADA, "custom": {"calendar": "https://cal.example/ada"}})
        bob = render_message(
            "s",
            body,
            {
                **ADA,
                "first_name": "Bob",
                "unsubscribe_url": "https://drumbeat.test/u/bob",
                "custom": {"calendar": "https://cal.example/bob"},
            },
        )
        assert (render._layout.cache_info().misses, render._layout.cache_info().hits) == (1, 1)
        assert "<strong>Ada</strong>" in ada.html and "Bob" not in ada.html
        assert "<strong>Bob</strong>" in bob.html and "Ada" not in bob.html
        assert 'href="https://cal.example/ada"' in ada.html and 'href="https://cal.example/bob"' in bob.html
        assert UNSUBSCRIBE in ada.html and UNSUBSCRIBE not in bob.html
        assert "https://drumbeat.test/u/bob" in bob.html

    @pytest.mark.parametrize("body", LAYOUT_BODIES)
    def test_it_gives_what_rendering_each_contact_gave(self, body):
        urls = {"calendar": "https://cal.example/ada", "path": "ada"}
        contexts = [
            {**ADA, "custom": urls},
            {**ADA, "first_name": "Zoë", "company": "Ünïcode 株式会社", "title": "CTO", "custom": urls},
            {
                **ADA,
                "company": "O'Brien & Sons <Ltd>",
                "title": 'say "hi"',
                "custom": {**urls, "path": "a/b?c=d&e=(f)"},
            },
            {**ADA, "company": "Acme*Corp", "custom": {"calendar": "https://bücher.example/x y", "path": "100%"}},
            {**ADA, "custom": {"calendar": "javascript:alert(1)", "path": "x"}},
            {**ADA, "custom": {"calendar": "mailto:ada@example.com", "path": "é"}},
        ]
        for context in contexts:
            assert render_message("s", body, context).html == per_contact_html(
                render._with_footer(body, render.DEFAULT_UNSUBSCRIBE_FOOTER), context
            )

    @given(
        st.sampled_from(LAYOUT_BODIES),
        st.lists(
            st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
            min_size=5,
            max_size=5,
        ),
    )
    @settings(max_examples=300, deadline=None)
    def test_it_gives_what_rendering_each_contact_gave_for_any_word_like_value(self, body, words):
        # Values that begin and end with a letter or digit, as names, companies and URLs do.
        first, company, title, calendar, path = ("a" + word + "z" for word in words)
        context = {**ADA, "first_name": first, "company": company, "title": title}
        context["custom"] = {"calendar": calendar, "path": path}
        html = render_message("s", body, context, unsubscribe_footer=None).html
        assert html == per_contact_html(body, context)

    @pytest.mark.parametrize(
        "value",
        ["*x*", "**bold**", "[a](https://evil.example)", "<b onclick='x()'>b</b>", 'a & b < c > "d"', "`code`", "\\*"],
    )
    def test_a_value_is_text_wherever_it_goes(self, value):
        body = (
            "{{ company }}\n\n*{{ company }}* [{{ company }}](https://example.org) "
            '![{{ company }}](https://example.org/i.png "{{ company }}")'
        )
        message = render_message("s", body, {**ADA, "company": value}, unsubscribe_footer=None)
        assert [tag for tag, _ in elements(message.html)] == ["p", "p", "em", "a", "img"]
        parsed = content(message.html)
        assert [text for text in parsed.text if text.strip()] == [value, value, value]
        assert ("img", "alt", value) in parsed.attributes and ("img", "title", value) in parsed.attributes

    def test_a_value_never_starts_a_list_or_changes_the_authors_emphasis(self):
        context = {**ADA, "company": "!Acme!", "custom": {"employees": 42}}
        message = render_message("s", "{{ custom.employees }}. staff\n\nat*{{ company }}*now", context)
        # Rendered contact by contact, "42. staff" was a list starting at 42 and the emphasis depended
        # on the value's first and last characters.
        assert "<p>42. staff</p>" in message.html
        assert "<p>at<em>!Acme!</em>now</p>" in message.html

    @pytest.mark.parametrize(
        ("calendar", "link"),
        [
            ("javascript:alert(1)", None),
            ("https://cal.example/a b", None),
            ("https://bücher.example/ada", "https://xn--bcher-kva.example/ada"),
            ("https://cal.example/100%", "https://cal.example/100%25"),
        ],
    )
    def test_a_url_value_is_checked_and_normalized_for_each_contact(self, calendar, link):
        message = render_message("s", "[Book]({{ custom.calendar }})", {**ADA, "custom": {"calendar": calendar}})
        hrefs = [value for tag, name, value in content(message.html).attributes if name == "href"]
        assert hrefs == ([link] if link else []) + [UNSUBSCRIBE]

    @pytest.mark.parametrize(
        "body",
        [
            "`{{ company }}`",
            "    {{ company }}",
            "```{{ company }}\ncode\n```",
            "<https://example.org/{{ company }}>",
            "[see][ref]\n\n[ref]: https://example.org/{{ company }}",
        ],
    )
    def test_where_a_value_cannot_be_put_in_afterwards_each_contact_is_rendered(self, body):
        context = {**ADA, "company": "*Acme* <b>"}
        message = render_message("s", body, context, unsubscribe_footer=None)
        assert render._layout(render._render_slots(body, render._prepare(context)).skeleton) is None
        assert message.html == per_contact_html(body, context)
        assert "<b>" not in message.html and "<em>" not in message.html

    @given(st.from_regex(render._PLAIN_URL, fullmatch=True))
    @settings(max_examples=500, deadline=None)
    def test_plain_urls_are_what_markdown_it_normalizes_them_to(self, url):
        assert render._MARKDOWN.normalizeLink(url) == url

    def test_a_template_cannot_print_a_slot_of_its_own(self):
        with pytest.raises(RenderError, match="reserved"):
            render_message("s", render._slot(0) + " {{ first_name }}", ADA)


class TestPreview:
    def test_it_marks_unresolved_fields_instead_of_raising(self):
        result = preview(
            "Hi {{ first_name }}",
            "Hello {{ first_name }} at {{ custom.region }}, {{ company | default('your team') }}",
            {"unsubscribe_url": UNSUBSCRIBE},
        )
        assert isinstance(result, Preview)
        assert result.unresolved == ("first_name", "custom.region")
        assert result.subject == "Hi {{ first_name }}"
        assert result.text.startswith("Hello {{ first_name }} at {{ custom.region }}, your team")
        assert '<mark class="unresolved">{{ first_name }}</mark>' in result.html
        assert '<mark class="unresolved">{{ custom.region }}</mark>' in result.html

    def test_it_renders_like_the_real_thing_when_everything_resolves(self):
        result = preview("Hi {{ first_name }}", "Hello **{{ company }}**", ADA)
        message = render_message("Hi {{ first_name }}", "Hello **{{ company }}**", ADA)
        assert result.unresolved == ()
        assert (result.subject, result.text, result.html) == (message.subject, message.text, message.html)

    def test_marks_cannot_be_forged_by_contact_values_or_authors(self):
        context = {**ADA, "company": "\ue000deadbeef0\ue001 <mark>x</mark>"}
        result = preview("s", "{{ company }} \ue0000\ue001 {{ first_name }}", context)
        assert result.html.count("<mark") == 0
        assert "&lt;mark&gt;x&lt;/mark&gt;" in result.html

    def test_it_still_raises_for_an_invalid_template(self):
        with pytest.raises(TemplateError, match="unknown field"):
            preview("{{ nope }}", "x", ADA)


def test_build_context_reads_a_contact_like_object():
    class Contact:
        first_name = "Ada"
        last_name = "Lovelace"
        email = "ada@example.com"
        company = None
        custom_fields = {"industry": "Computing"}

    context = build_context(Contact(), sender_name="Charles", unsubscribe_url=UNSUBSCRIBE)
    assert context["first_name"] == "Ada"
    assert context["title"] is None
    assert context["custom"] == {"industry": "Computing"}
    message = render_message("{{ full_name }} / {{ custom.industry }} / {{ sender_name }}", "x", context)
    assert message.subject == "Ada Lovelace / Computing / Charles"
