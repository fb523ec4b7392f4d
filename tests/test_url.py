"""Tests for thorn.transport.url: one parse, one normalised destination."""

from __future__ import annotations

import pickle
from ipaddress import IPv4Address, IPv6Address

import pytest

from thorn.exceptions import ThornError
from thorn.transport.url import URL, InvalidURL, parse_url


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://0X7F000001/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://0x7f.0.0.1/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://127.0.0.1./", "127.0.0.1"),
        ("http://127.0.1/", "127.0.0.1"),
        ("http://10.1/", "10.0.0.1"),
        ("http://167772161/", "10.0.0.1"),
        ("http://0xa000001/", "10.0.0.1"),
        ("http://012.0.0.1/", "10.0.0.1"),
        ("http://169.254.43518/", "169.254.169.254"),
        ("http://2852039166/", "169.254.169.254"),
        ("http://0xa9fea9fe/", "169.254.169.254"),
        ("http://0251.0376.0251.0376/", "169.254.169.254"),
        ("http://0/", "0.0.0.0"),
        ("http://0x/", "0.0.0.0"),
        ("http://255.255.255.255/", "255.255.255.255"),
        ("http://4294967295/", "255.255.255.255"),
    ],
)
def test_every_ipv4_spelling_is_normalised_to_a_dotted_quad(
    url: str, host: str
) -> None:
    parsed = parse_url(url)
    assert parsed.host == host
    assert parsed.ip == IPv4Address(host)


def test_fullwidth_digits_are_mapped_before_the_ipv4_check() -> None:
    assert parse_url("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/").host == (
        "127.0.0.1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://256.0.0.1/",
        "http://1.2.3.256/",
        "http://1.2.65536/",
        "http://1.16777216/",
        "http://4294967296/",
        "http://0x100000000/",
        "http://1.2.3.4.5/",
        "http://08.0.0.1/",
        "http://0x7g.0.0.1/",
        "http://example.123/",
        "http://1..2/",
        "http://000000000000000000000000000000000000000000000000000009/",
        "http://99999999999999999999999999999999999999999999999999999999/",
    ],
)
def test_a_host_ending_in_a_number_must_be_a_valid_ipv4_address(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_long_zero_padded_octal_is_still_read_as_an_address() -> None:
    assert parse_url("http://" + "0" * 40 + "177.1/").host == "127.0.0.1"


def test_a_hex_looking_label_that_is_not_last_makes_a_host_name() -> None:
    assert parse_url("http://0x7f.example.com/").host == "0x7f.example.com"
    assert parse_url("http://0x7g/").host == "0x7g"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://[::1]/", "::1"),
        ("http://[::FFFF:127.0.0.1]/", "::ffff:7f00:1"),
        ("http://[::127.0.0.1]/", "::7f00:1"),
        ("http://[2001:DB8:0:0:0:0:0:1]:8080/", "2001:db8::1"),
        ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),
    ],
)
def test_ipv6_hosts_are_compressed_lower_case_and_unbracketed(
    url: str, host: str
) -> None:
    parsed = parse_url(url)
    assert parsed.host == host
    assert isinstance(parsed.ip, IPv6Address)


@pytest.mark.parametrize(
    "url",
    [
        "http://[fe80::1%25eth0]/",
        "http://[fe80::1%eth0]/",
        "http://[::1/",
        "http://[::1]x/",
        "http://[127.0.0.1]/",
        "http://[v1.abc]/",
        "http://[]/",
        "http://[::g]/",
        "http://::1/",
        "http://[1:2:3:4:5:6:7:8:9]/",
    ],
)
def test_malformed_ipv6_hosts_and_zone_ids_are_invalid(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_host_names_are_lower_cased_and_lose_a_trailing_dot() -> None:
    parsed = parse_url("HTTPS://Example.COM./Path")
    assert parsed.scheme == "https"
    assert parsed.host == "example.com"
    assert parsed.target == "/Path"
    assert parsed.ip is None


def test_unicode_host_names_are_idna_encoded() -> None:
    assert parse_url("https://B\u00fccher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        # IDNA 2008 keeps these letters; IDNA 2003 turned them into others.
        ("https://fa\u00df.de/", "xn--fa-hia.de"),
        ("https://FA\u00df.DE/", "xn--fa-hia.de"),
        ("https://\u03c2.example/", "xn--3xa.example"),
        # UTS 46 maps full-width letters and full stops before encoding.
        ("https://\uff21\uff22\uff23\uff0eexample/", "abc.example"),
        # ASCII labels keep Thorn's rules (an underscore is allowed).
        ("https://my_hook.b\u00fccher.example/", "my_hook.xn--bcher-kva.example"),
        # Already-encoded labels that idna accepts are kept as they are.
        ("https://XN--FA-HIA.de/", "xn--fa-hia.de"),
        ("https://xn--55qx5d.example/", "xn--55qx5d.example"),
    ],
)
def test_unicode_host_names_are_encoded_as_browsers_do(url: str, host: str) -> None:
    assert parse_url(url).host == host


@pytest.mark.parametrize(
    "host",
    [
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # full-width digits
        "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11",  # and full stops
        "\uff10\uff58\uff17\uff46.1",  # full-width hex: 0x7f.1
        "\uff12\uff11\uff13\uff10\uff17\uff10\uff16\uff14\uff13\uff13",  # 2130706433
    ],
)
def test_full_width_spellings_of_an_ipv4_address_are_still_addresses(
    host: str,
) -> None:
    parsed = parse_url(f"http://{host}/")
    assert parsed.host == "127.0.0.1"
    assert parsed.ip == IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("a\u2010b.example", "U+2010"),  # HYPHEN: disallowed in IDNA 2008
        ("\u2488.example", "U+2488"),  # DIGIT ONE FULL STOP: disallowed in UTS 46
        ("a\u00b7b.example", "U+00B7"),  # MIDDLE DOT outside l\u00b7l
        ("\u0663a.example", "directionality"),  # breaks the bidi rule
        ("\u00fc" * 60 + ".example", "too long"),  # over 63 octets once encoded
        ("xn--a.example", "U+0080"),  # not valid Punycode
        ("xn--ss-.example", "hyphen"),
        ("\u00fc.xn--.example", "A-label"),
    ],
)
def test_host_names_that_idna_refuses_are_invalid_urls(host: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(f"https://user:s3cret@{host}/hook")
    message = str(info.value)
    assert "not a valid internationalised domain name" in message
    assert reason in message
    assert "xn--" in message  # says which form to write instead
    assert "s3cret" not in message


def test_unicode_full_stops_separate_labels() -> None:
    assert parse_url("http://example\u3002com/").host == "example.com"


def test_underscores_are_allowed_in_host_names() -> None:
    assert parse_url("http://my_service.example.com/").host == "my_service.example.com"


@pytest.mark.parametrize(
    "url",
    [
        "http://exa%6dple.com/",
        "http://a<b.com/",
        "http://a$b.com/",
        "http://-leading.example/",
        "http://trailing-.example/",
        "http://a..b/",
        "http://./",
        "http://" + "a" * 64 + ".com/",
        "http://" + ".".join(["a" * 60] * 5) + "/",
        "http://a\uff0fb.example/",
        "http://xn--a.\udcff/",
    ],
)
def test_hosts_with_characters_not_allowed_in_a_host_name_are_invalid(
    url: str,
) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_a_label_of_63_characters_and_a_name_of_253_are_allowed() -> None:
    label = "a" * 63
    assert parse_url(f"http://{label}.com/").host == f"{label}.com"
    name = ".".join(["b" * 49] * 5) + ".cde"
    assert len(name) == 253
    assert parse_url(f"http://{name}/").host == name


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a\tb",
        "http://example.com/a\nb",
        "http://exam\rple.com/",
        "http://example.com/ ",
        " http://example.com/",
        "http://example.com/a\x00",
        "http://example.com/a\x7f",
        "http://example.com/\u00a0",
        "http://exam\u200bple.com/",
        "http://example.com/\u202e",
        "http://example.com/\u2028",
    ],
)
def test_whitespace_and_control_characters_anywhere_are_invalid(url: str) -> None:
    with pytest.raises(InvalidURL, match="position"):
        parse_url(url)


def test_a_backslash_is_invalid_so_it_cannot_hide_the_real_host() -> None:
    with pytest.raises(InvalidURL, match="backslash"):
        parse_url("http://127.0.0.1\\@example.com/")


def test_the_host_after_userinfo_is_the_one_connected_to() -> None:
    parsed = parse_url("http://example.com@127.0.0.1/")
    assert parsed.host == "127.0.0.1"
    assert parsed.username == "example.com"
    assert parsed.password is None


def test_more_than_one_at_sign_before_the_path_is_invalid() -> None:
    with pytest.raises(InvalidURL, match="%40"):
        parse_url("http://user@evil.com@example.com/")


def test_userinfo_is_percent_decoded() -> None:
    parsed = parse_url("http://us%65r:p%40ss%3Aword@example.com/")
    assert parsed.username == "user"
    assert parsed.password == "p@ss:word"


def test_an_empty_password_is_kept_apart_from_no_password() -> None:
    assert parse_url("http://user:@example.com/").password == ""
    assert parse_url("http://user@example.com/").password is None
    assert parse_url("http://@example.com/").username is None


def test_userinfo_that_is_not_utf8_is_invalid() -> None:
    with pytest.raises(InvalidURL, match="UTF-8"):
        parse_url("http://user:%ff@example.com/")


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://example.com/", 80),
        ("https://example.com/", 443),
        ("http://example.com:8080/", 8080),
        ("https://example.com:443/", 443),
        ("http://example.com:/", 80),
        ("http://example.com:0080/", 80),
        ("http://example.com:65535/", 65535),
        ("ftp://example.com/", 0),
        ("ftp://example.com:21/", 21),
    ],
)
def test_the_port_is_explicit_or_the_scheme_default(url: str, port: int) -> None:
    assert parse_url(url).port == port


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:99999999999999999999/",
        "http://example.com:-1/",
        "http://example.com:+80/",
        "http://example.com:8o/",
        "http://example.com:\uff18\uff10/",
        "http://example.com:80:80/",
    ],
)
def test_an_invalid_port_is_refused(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("HTTP://example.com/", "http"),
        ("ftp://example.com/", "ftp"),
        ("git+ssh://example.com/", "git+ssh"),
        ("coap.tcp-x://example.com/", "coap.tcp-x"),
    ],
)
def test_any_syntactically_valid_scheme_parses(url: str, scheme: str) -> None:
    assert parse_url(url).scheme == scheme


@pytest.mark.parametrize(
    "url",
    [
        "example.com/hook",
        "//example.com/hook",
        "http:example.com",
        "http:/example.com",
        "mailto:user@example.com",
        "1http://example.com/",
        "ht_tp://example.com/",
        "://example.com/",
        "h\u00e9://example.com/",
    ],
)
def test_a_missing_or_invalid_scheme_is_refused(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://", "http:///path", "http://:80/", "http://?x", "http://#f", "http://u@/"],
)
def test_a_missing_host_is_refused(url: str) -> None:
    with pytest.raises(InvalidURL, match="host"):
        parse_url(url)


@pytest.mark.parametrize("value", [None, b"http://example.com/", 42, ["http://x/"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidURL, match="must be a str"):
        parse_url(value)  # type: ignore[arg-type]


def test_an_empty_url_is_refused() -> None:
    with pytest.raises(InvalidURL, match="empty"):
        parse_url("")


def test_invalid_url_is_a_value_error_and_a_thorn_error() -> None:
    assert issubclass(InvalidURL, ValueError)
    assert issubclass(InvalidURL, ThornError)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://example.com", "/"),
        ("http://example.com?a=1", "/?a=1"),
        ("http://example.com/a/b?c=d&e=f#frag", "/a/b?c=d&e=f"),
        ("http://example.com/#only-fragment", "/"),
        ("http://example.com/caf\u00e9?q=\u00fc", "/caf%C3%A9?q=%C3%BC"),
        ("http://example.com/%41%zz", "/%41%25zz"),
        ('http://example.com/<a>"{b}"', "/%3Ca%3E%22%7Bb%7D%22"),
        ("http://example.com/a?b?c=/d", "/a?b?c=/d"),
        ("http://example.com/:@!$&'()*+,;=-._~", "/:@!$&'()*+,;=-._~"),
    ],
)
def test_the_target_is_path_and_query_safely_encoded_without_fragment(
    url: str, target: str
) -> None:
    assert parse_url(url).target == target


def test_an_url_object_passes_through_unchanged() -> None:
    parsed = parse_url("https://example.com/x")
    assert parse_url(parsed) is parsed


def test_raw_keeps_the_text_given() -> None:
    text = "HTTP://User:Secret@Example.com:80/a"
    assert parse_url(text).raw == text


def test_equal_destinations_spelled_differently_are_equal() -> None:
    assert parse_url("http://127.1/") == parse_url("http://0x7f000001:80/")
    assert hash(parse_url("http://127.1/")) == hash(parse_url("http://127.0.0.1/"))


@pytest.mark.parametrize(
    ("url", "header", "default"),
    [
        ("http://example.com/", "example.com", True),
        ("http://example.com:80/", "example.com", True),
        ("https://example.com:8443/", "example.com:8443", False),
        ("http://[::1]/", "[::1]", True),
        ("http://[::1]:8080/", "[::1]:8080", False),
        ("ftp://example.com/", "example.com", True),
    ],
)
def test_the_host_header_brackets_ipv6_and_adds_a_non_default_port(
    url: str, header: str, default: bool
) -> None:
    parsed = parse_url(url)
    assert parsed.host_header == header
    assert parsed.is_default_port is default


def test_origin_is_scheme_host_and_port() -> None:
    assert parse_url("https://Example.com/x").origin == ("https", "example.com", 443)


def test_the_redacted_form_hides_the_password_only() -> None:
    parsed = parse_url("https://user:s3cret@example.com:8443/p?q=1#f")
    assert parsed.redacted() == "https://user:***@example.com:8443/p?q=1"
    assert str(parsed) == parsed.redacted()
    assert "s3cret" not in repr(parsed)
    assert parsed.password == "s3cret"


def test_the_redacted_form_of_a_url_without_credentials_is_the_url() -> None:
    assert parse_url("http://example.com/a").redacted() == "http://example.com/a"
    assert parse_url("http://bob@example.com/").redacted() == "http://bob@example.com/"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@exa%mple.com/",
        "http://user:s3cret@example.com:bad/",
        "http://user:s3cret@example.com:99999/",
        "http://user:s3cret@evil.com@example.com/",
        "http://user:s3cret@[fe80::1%25eth0]/",
        "http://user:s3cret@[::1/",
        "http://user:s3cret@1.2.3.4.5/",
        "http://user:s3cret@/",
        "http://user:s3cret@-bad.example/",
        "ht_tp://user:s3cret@example.com/",
        "user:s3cret@example.com/",
        "http://user:s3c/ret@example.com/",
        "http://user:s3c#ret@example.com/",
        "http://s3cret%/@example.com/",
    ],
)
def test_no_error_message_contains_the_password(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(url)
    assert "s3cret" not in str(info.value)
    assert "ret@" not in str(info.value)


def test_messages_say_what_to_do() -> None:
    with pytest.raises(InvalidURL, match=r"e\.g\. 'https://example\.com/webhook'"):
        parse_url("example.com/hook")
    with pytest.raises(InvalidURL, match="brackets"):
        parse_url("http://2001:db8::1/")


def test_a_url_built_directly_composes_its_raw_text() -> None:
    url = URL(scheme="https", host="example.com", port=443, password="pw")
    assert url.raw == "https://:pw@example.com/"
    assert url.redacted() == "https://:***@example.com/"


def test_urls_survive_pickling() -> None:
    parsed = parse_url("https://u:p@example.com/x")
    assert pickle.loads(pickle.dumps(parsed)) == parsed  # noqa: S301 - our own bytes


def test_urls_are_immutable() -> None:
    parsed = parse_url("https://example.com/")
    with pytest.raises(AttributeError):
        parsed.host = "127.0.0.1"  # type: ignore[misc]
