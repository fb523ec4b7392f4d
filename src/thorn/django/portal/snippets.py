"""Signature verification code for receivers, in five languages.

Each snippet defines two functions: one checks ``Hook-HMAC`` (base64 of the
HMAC of the raw body, with the subscription's digest), the other checks the
Standard Webhooks ``webhook-signature`` (HMAC-SHA256 of ``id.timestamp.body``,
any of the space-separated ``v1,`` entries, the timestamp within five
minutes). The rules are those of ``docs/security.md``; the tests run the
Python, Node.js, Ruby and PHP snippets against real signed requests.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LANGUAGES", "Snippet", "snippets"]


@dataclass(frozen=True, slots=True)
class Snippet:
    """One language's verification code."""

    key: str
    language: str
    filename: str
    code: str
    usage: str


_PYTHON = '''\
import base64
import hmac
import time

DIGEST = "__DIGEST__"  # this subscription's Hook-HMAC digest


def _lower(headers):
    return {str(name).lower(): str(value) for name, value in headers.items()}


def verify_hook_hmac(body: bytes, headers, secret: str) -> bool:
    """Hook-HMAC: base64 of the HMAC of the raw body."""
    received = _lower(headers).get("hook-hmac", "").strip()
    mac = hmac.new(secret.encode(), body, DIGEST).digest()
    expected = base64.b64encode(mac).decode()
    return hmac.compare_digest(expected.encode(), received.encode())


def verify_standard_webhook(body: bytes, headers, secret: str, tolerance=300) -> bool:
    """webhook-signature (Standard Webhooks): id, timestamp and body, SHA-256."""
    h = _lower(headers)
    msg_id = h.get("webhook-id", "")
    timestamp = h.get("webhook-timestamp", "")
    if not msg_id or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    if secret.startswith("whsec_"):
        rest = secret[len("whsec_"):]
        key = base64.b64decode(rest + "=" * (-len(rest) % 4))
    else:
        key = secret.encode()
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, "sha256").digest())
    return any(
        hmac.compare_digest(expected, entry[3:].encode())
        for entry in h.get("webhook-signature", "").split()
        if entry.startswith("v1,")
    )
'''

_PYTHON_USAGE = """\
# Django: the raw body and the headers, before parsing anything.
if not verify_standard_webhook(request.body, request.headers, SECRET):
    return HttpResponse(status=401)"""

_NODE = """\
const crypto = require("crypto");

const DIGEST = "__DIGEST__"; // this subscription's Hook-HMAC digest

function header(headers, name) {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return String(value);
  }
  return "";
}

function safeEqual(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// Hook-HMAC: base64 of the HMAC of the raw body (a Buffer).
function verifyHookHmac(body, headers, secret) {
  const expected = crypto.createHmac(DIGEST, secret).update(body).digest("base64");
  return safeEqual(expected, header(headers, "hook-hmac").trim());
}

// webhook-signature (Standard Webhooks): id, timestamp and body, SHA-256.
function verifyStandardWebhook(body, headers, secret, tolerance = 300) {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  if (!id || !/^[0-9]+$/.test(timestamp)) return false;
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) return false;
  const key = secret.startsWith("whsec_")
    ? Buffer.from(secret.slice(6), "base64")
    : Buffer.from(secret, "utf8");
  const expected = crypto
    .createHmac("sha256", key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]))
    .digest("base64");
  return header(headers, "webhook-signature")
    .split(" ")
    .some((entry) => entry.startsWith("v1,") && safeEqual(expected, entry.slice(3)));
}

module.exports = { verifyHookHmac, verifyStandardWebhook };
"""

_NODE_USAGE = """\
// Express: keep the raw body, e.g. app.post(path, express.raw({ type: "*/*" }), ...)
if (!verifyStandardWebhook(req.body, req.headers, process.env.WEBHOOK_SECRET)) {
  return res.sendStatus(401);
}"""

_RUBY = """\
require "openssl"

DIGEST = "__DIGEST__" # this subscription's Hook-HMAC digest

# Header names in any case; Rack's HTTP_HOOK_HMAC style works too.
def webhook_header(headers, name)
  headers.each do |key, value|
    normal = key.to_s.downcase.sub(/\\Ahttp_/, "").tr("_", "-")
    return value.to_s if normal == name
  end
  ""
end

# Hook-HMAC: base64 of the HMAC of the raw body.
def verify_hook_hmac(body, headers, secret)
  expected = [OpenSSL::HMAC.digest(DIGEST, secret, body)].pack("m0")
  OpenSSL.secure_compare(expected, webhook_header(headers, "hook-hmac").strip)
end

# webhook-signature (Standard Webhooks): id, timestamp and body, SHA-256.
def verify_standard_webhook(body, headers, secret, tolerance = 300)
  id = webhook_header(headers, "webhook-id")
  timestamp = webhook_header(headers, "webhook-timestamp")
  return false if id.empty? || !timestamp.match?(/\\A[0-9]+\\z/)
  return false if (Time.now.to_i - timestamp.to_i).abs > tolerance

  key = secret.start_with?("whsec_") ? secret[6..].unpack1("m") : secret
  signed = "#{id}.#{timestamp}.".b + body.b
  expected = [OpenSSL::HMAC.digest("sha256", key, signed)].pack("m0")
  webhook_header(headers, "webhook-signature").split(" ").any? do |entry|
    entry.start_with?("v1,") && OpenSSL.secure_compare(expected, entry[3..])
  end
end
"""

_RUBY_USAGE = """\
# Rails: request.raw_post and request.headers (or Rack's env).
head :unauthorized unless verify_standard_webhook(
  request.raw_post, request.headers, ENV.fetch("WEBHOOK_SECRET")
)"""

_PHP = """\
<?php
const WEBHOOK_DIGEST = '__DIGEST__'; // this subscription's Hook-HMAC digest

function webhook_header(array $headers, string $name): string
{
    foreach ($headers as $key => $value) {
        if (strtolower((string) $key) === $name) {
            return is_array($value) ? (string) reset($value) : (string) $value;
        }
    }
    return '';
}

// Hook-HMAC: base64 of the HMAC of the raw body.
function verify_hook_hmac(string $body, array $headers, string $secret): bool
{
    $expected = base64_encode(hash_hmac(WEBHOOK_DIGEST, $body, $secret, true));
    return hash_equals($expected, trim(webhook_header($headers, 'hook-hmac')));
}

// webhook-signature (Standard Webhooks): id, timestamp and body, SHA-256.
function verify_standard_webhook(
    string $body, array $headers, string $secret, int $tolerance = 300
): bool {
    $id = webhook_header($headers, 'webhook-id');
    $timestamp = webhook_header($headers, 'webhook-timestamp');
    if ($id === '' || !ctype_digit($timestamp)) {
        return false;
    }
    if (abs(time() - (int) $timestamp) > $tolerance) {
        return false;
    }
    $key = str_starts_with($secret, 'whsec_')
        ? base64_decode(substr($secret, 6))
        : $secret;
    $signed = $id . '.' . $timestamp . '.' . $body;
    $expected = base64_encode(hash_hmac('sha256', $signed, $key, true));
    $entries = explode(' ', webhook_header($headers, 'webhook-signature'));
    foreach ($entries as $entry) {
        if (str_starts_with($entry, 'v1,')
            && hash_equals($expected, substr($entry, 3))) {
            return true;
        }
    }
    return false;
}
"""

_PHP_USAGE = """\
$body = file_get_contents('php://input');
if (!verify_standard_webhook($body, getallheaders(), getenv('WEBHOOK_SECRET'))) {
    http_response_code(401);
    exit;
}"""

_GO = """\
package webhooks

import (
	"crypto/hmac"
__GO_IMPORTS__	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// VerifyHookHMAC checks Hook-HMAC: base64 of the HMAC of the raw body.
func VerifyHookHMAC(body []byte, header http.Header, secret string) bool {
	mac := hmac.New(__GO_NEW__, []byte(secret))
	mac.Write(body)
	expected := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	received := strings.TrimSpace(header.Get("Hook-HMAC"))
	return hmac.Equal([]byte(expected), []byte(received))
}

// VerifyStandardWebhook checks webhook-signature (Standard Webhooks): id,
// timestamp and body, HMAC-SHA256.
func VerifyStandardWebhook(body []byte, header http.Header, secret string) bool {
	const tolerance = 5 * time.Minute
	id := header.Get("webhook-id")
	timestamp := header.Get("webhook-timestamp")
	seconds, err := strconv.ParseUint(timestamp, 10, 63)
	if id == "" || err != nil {
		return false
	}
	age := time.Since(time.Unix(int64(seconds), 0))
	if age > tolerance || age < -tolerance {
		return false
	}
	key := []byte(secret)
	if strings.HasPrefix(secret, "whsec_") {
		raw := strings.TrimRight(strings.TrimPrefix(secret, "whsec_"), "=")
		decoded, err := base64.RawStdEncoding.DecodeString(raw)
		if err != nil {
			return false
		}
		key = decoded
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	expected := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, entry := range strings.Fields(header.Get("webhook-signature")) {
		if strings.HasPrefix(entry, "v1,") && hmac.Equal(expected, []byte(entry[3:])) {
			return true
		}
	}
	return false
}
"""

_GO_USAGE = """\
secret := os.Getenv("WEBHOOK_SECRET")
body, err := io.ReadAll(r.Body)
if err != nil || !webhooks.VerifyStandardWebhook(body, r.Header, secret) {
	w.WriteHeader(http.StatusUnauthorized)
	return
}"""

#: Go's package for each digest the portal offers.
_GO_HASHES = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}

#: The languages, in the order the page lists them.
LANGUAGES = ["python", "node", "ruby", "php", "go"]


def _go_code(digest: str) -> str:
    package = _GO_HASHES.get(digest, "sha256")
    imports = sorted({package, "sha256"})
    lines = "".join(f'\t"crypto/{name}"\n' for name in imports)
    return _GO.replace("__GO_IMPORTS__", lines).replace("__GO_NEW__", f"{package}.New")


def snippets(digest: str) -> list[Snippet]:
    """The verification code of each language, for a subscription's ``digest``.

    Raises:
        ValueError: ``digest`` is not one the portal offers (sha1, sha256,
            sha512).
    """
    if digest not in _GO_HASHES:
        raise ValueError(
            f"no verification snippets for the digest {digest!r}: use one of "
            f"{', '.join(_GO_HASHES)}"
        )
    return [
        Snippet(
            "python",
            "Python",
            "webhooks.py",
            _PYTHON.replace("__DIGEST__", digest),
            _PYTHON_USAGE,
        ),
        Snippet(
            "node",
            "Node.js",
            "webhooks.js",
            _NODE.replace("__DIGEST__", digest),
            _NODE_USAGE,
        ),
        Snippet(
            "ruby",
            "Ruby",
            "webhooks.rb",
            _RUBY.replace("__DIGEST__", digest),
            _RUBY_USAGE,
        ),
        Snippet(
            "php", "PHP", "webhooks.php", _PHP.replace("__DIGEST__", digest), _PHP_USAGE
        ),
        Snippet("go", "Go", "webhooks.go", _go_code(digest), _GO_USAGE),
    ]
