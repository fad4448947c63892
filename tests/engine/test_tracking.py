import pytest
from itsdangerous import URLSafeSerializer

from webapp.engine.render import render_message
from webapp.engine.tracking import (
    MAX_TOKEN_CHARS,
    BadToken,
    make_token,
    pixel_html,
    read_token,
    rewrite_links,
    token_url,
)

SECRET = "tracking-secret-for-tests"
DELIVERY = "0b9f6c5e-1d2a-4c1e-9a57-3f1d2e4b5a6c"
CLICK = {"d": DELIVERY, "u": "https://example.com/pricing?plan=pro&ref=mail#top"}
UNSUBSCRIBE = {
    "w": "6f1c8a8e-5d0e-4d53-8b8e-2a4c3d9b7f10",
    "c": "9a7e2c44-0f3b-4a55-b1c9-8e5d6f7a8b90",
    "e": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
}


def tamper(token: str) -> str:
    index = len(token) // 2
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]


class TestTokens:
    @pytest.mark.parametrize(
        ("kind", "payload"),
        [
            ("open", {"d": DELIVERY}),
            ("click", CLICK),
            ("unsubscribe", UNSUBSCRIBE),
            ("unsubscribe", {"w": "w1", "c": "c1"}),
            ("unsubscribe", {"w": "w1", "e": "e1"}),
        ],
    )
    def test_a_token_round_trips(self, kind, payload):
        token = make_token(kind, payload, SECRET)
        assert read_token(kind, token, SECRET) == payload

    def test_tokens_are_url_safe(self):
        token = make_token("click", {**CLICK, "u": "https://example.com/ü?q=a%20b&x=/+="}, SECRET)
        assert all(ch.isalnum() or ch in "-_." for ch in token)

    def test_a_tampered_token_is_refused(self):
        token = make_token("click", CLICK, SECRET)
        with pytest.raises(BadToken):
            read_token("click", tamper(token), SECRET)
        with pytest.raises(BadToken):
            read_token("click", token[:-1], SECRET)

    def test_a_token_of_another_kind_is_refused(self):
        open_token = make_token("open", {"d": DELIVERY}, SECRET)
        with pytest.raises(BadToken):
            read_token("click", open_token, SECRET)
        with pytest.raises(BadToken):
            read_token("unsubscribe", make_token("click", CLICK, SECRET), SECRET)

    def test_a_token_signed_with_another_secret_is_refused(self):
        with pytest.raises(BadToken):
            read_token("open", make_token("open", {"d": DELIVERY}, "other-secret"), SECRET)

    def test_the_click_target_cannot_be_swapped(self):
        # Re-signing is impossible without the secret; a token forged with a guessed secret fails.
        forged = URLSafeSerializer("guess", salt="drumbeat.click").dumps({**CLICK, "u": "https://evil.example"})
        with pytest.raises(BadToken):
            read_token("click", forged, SECRET)

    def test_a_signed_payload_of_the_wrong_shape_is_refused(self):
        signer = URLSafeSerializer(SECRET, salt="drumbeat.click")
        for payload in (["x"], {"d": DELIVERY}, {**CLICK, "u": "javascript:alert(1)"}, {**CLICK, "x": "1"}):
            with pytest.raises(BadToken):
                read_token("click", signer.dumps(payload), SECRET)

    @pytest.mark.parametrize("token", ["", "abc", "a" * (MAX_TOKEN_CHARS + 1), None, "..", "e30.x"])
    def test_malformed_tokens_are_refused(self, token):
        with pytest.raises(BadToken):
            read_token("open", token, SECRET)

    def test_the_signer_is_reused_per_kind_and_secret_only(self):
        listed = make_token("open", {"d": DELIVERY}, ["old-secret", "new-secret"])
        assert make_token("open", {"d": DELIVERY}, ("old-secret", "new-secret")) == listed
        assert make_token("open", {"d": DELIVERY}, "new-secret") == listed  # the newest secret signs
        assert make_token("open", {"d": DELIVERY}, "old-secret") != listed
        assert make_token("click", {"d": DELIVERY, "u": "https://x.example"}, "new-secret") != listed
        assert read_token("open", listed, ["new-secret"]) == {"d": DELIVERY}

    def test_secrets_can_be_rotated(self):
        old_token = make_token("open", {"d": DELIVERY}, "old-secret")
        new_token = make_token("open", {"d": DELIVERY}, ["old-secret", "new-secret"])
        assert read_token("open", old_token, ["old-secret", "new-secret"]) == {"d": DELIVERY}
        assert read_token("open", new_token, "new-secret") == {"d": DELIVERY}
        with pytest.raises(BadToken):
            read_token("open", new_token, "old-secret")

    @pytest.mark.parametrize(
        ("kind", "payload"),
        [
            ("open", {}),
            ("open", {"d": ""}),
            ("open", {"d": 5}),
            ("open", {"d": DELIVERY, "extra": "x"}),
            ("click", {"d": DELIVERY}),
            ("click", {"d": DELIVERY, "u": "javascript:alert(1)"}),
            ("click", {"d": DELIVERY, "u": "//evil.example"}),
            ("click", {"d": DELIVERY, "u": "https://x.example/" + "a" * 3000}),
            ("unsubscribe", {"c": "c1"}),
            ("unsubscribe", {"w": "w1"}),
            ("unsubscribe", {"w": "w1", "e": "e1", "contact_id": "c1"}),
            ("bounce", {"d": DELIVERY}),
        ],
    )
    def test_make_token_refuses_bad_payloads(self, kind, payload):
        with pytest.raises(ValueError):
            make_token(kind, payload, SECRET)

    def test_a_secret_is_required(self):
        with pytest.raises(ValueError):
            make_token("open", {"d": DELIVERY}, "")

    def test_token_url(self):
        assert token_url("https://app.example/", "click", "abc") == "https://app.example/t/c/abc"
        assert token_url("https://app.example", "open", "abc") == "https://app.example/t/o/abc"
        assert token_url("https://app.example", "unsubscribe", "abc") == "https://app.example/u/abc"


class TestRewriteLinks:
    def test_it_rewrites_web_links_only(self):
        html = (
            '<p><a href="https://example.com/a?x=1&amp;y=2" rel="noopener noreferrer">a</a> '
            '<a href="HTTP://example.com/b">b</a> '
            '<a href="mailto:ada@example.com">mail</a> '
            '<a rel="x" href="https://drumbeat.test/u/tok">unsubscribe</a> '
            '<img src="https://example.com/logo.png" alt=""></p>'
        )
        seen = []

        def click(url):
            seen.append(url)
            return f'https://drumbeat.test/t/c/{len(seen)}?u="{url}"'

        result = rewrite_links(html, click, keep={"https://drumbeat.test/u/tok"})
        assert seen == ["https://example.com/a?x=1&y=2", "HTTP://example.com/b"]
        assert 'href="https://drumbeat.test/t/c/1?u=&quot;https://example.com/a?x=1&amp;y=2&quot;"' in result
        assert 'href="mailto:ada@example.com"' in result
        assert 'href="https://drumbeat.test/u/tok"' in result
        assert 'src="https://example.com/logo.png"' in result

    def test_it_works_on_rendered_messages_end_to_end(self):
        unsubscribe = "https://drumbeat.test/u/tok_1"
        message = render_message(
            "s",
            "See [pricing](https://example.com/pricing?a=1&b=2) or [mail me](mailto:c@drumbeat.test).",
            {"unsubscribe_url": unsubscribe},
        )

        def click(url):
            return token_url("https://drumbeat.test", "click", make_token("click", {"d": DELIVERY, "u": url}, SECRET))

        html = rewrite_links(message.html, click, keep={unsubscribe})
        assert "https://example.com/pricing" not in html
        assert f'href="{unsubscribe}"' in html
        assert 'href="mailto:c@drumbeat.test"' in html
        token = html.split("/t/c/")[1].split('"')[0]
        assert read_token("click", token, SECRET)["u"] == "https://example.com/pricing?a=1&b=2"

    def test_html_without_links_is_unchanged(self):
        html = '<p>No links here, just a href="x" in text.</p>'
        assert rewrite_links(html, lambda url: "X") == html


class TestPixel:
    def test_it_is_a_one_by_one_image(self):
        tag = pixel_html("https://drumbeat.test/t/o/abc?x=1&y=2")
        assert tag.startswith('<img src="https://drumbeat.test/t/o/abc?x=1&amp;y=2"')
        assert 'width="1" height="1" alt=""' in tag

    def test_it_refuses_other_schemes(self):
        for url in ("javascript:alert(1)", "/t/o/abc", "https://x.test/a b"):
            with pytest.raises(ValueError):
                pixel_html(url)

    def test_it_escapes_the_url(self):
        assert pixel_html('https://x.test/"onload="x').startswith('<img src="https://x.test/&quot;onload=&quot;x" ')
