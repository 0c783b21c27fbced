"""Splits by content: a problem's split follows from its text alone, so splits are disjoint by construction,
stable across machines, files and orderings, and the same for every seed."""

from __future__ import annotations

import hashlib


def content_hash(text: str) -> int:
    """The first 8 bytes of the SHA-256 of ``text`` (UTF-8), big-endian: a stable, uniform 64-bit number."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def bucket(text: str, buckets: int) -> int:
    """Which of ``buckets`` equal shares the text falls in (its hash modulo ``buckets``): a split takes some buckets."""
    return content_hash(text) % buckets


def in_bucket(text: str, buckets: int) -> bool:
    """True for about one text in ``buckets``: the ones in bucket 0."""
    return bucket(text, buckets) == 0


def fraction(text: str) -> float:
    """The text's hash as a number in [0, 1): texts below ``f`` are about a fraction ``f`` of all texts."""
    return content_hash(text) / 2**64
