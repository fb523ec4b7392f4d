"""Small helpers shared by Thorn's modules (HMAC signing, JSON encoding)."""
