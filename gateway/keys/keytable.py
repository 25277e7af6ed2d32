"""Every key of the table in memory, by the SHA256 of its plaintext, in about 64 bytes a key.

A key with nothing but the defaults (a publishable key, or a secret key with the default
template, no limits, restrictions or expiry: almost every key) is a packed record of ``RECORD``
bytes, kept in the order of the digest: the SHA256, the id, 0 (publishable) or 1 (secret), and
the display prefix's 6 characters after the type's; the database packs them on a full reload
(``store.RING_PACKED_SQL``). A lookup first asks the entries in use (``_hot``); a key not among
them is found by a binary search (in C) over the digests' first 8 bytes and becomes an entry
there. Keys with more than the defaults are kept as entries (``_pinned``). The mapping interface
takes the Management API's ``hash`` (43 unpadded base64url characters); the request path asks
``get_digest``.
"""

from __future__ import annotations

import base64
from array import array
from bisect import bisect_left
from typing import Iterable, Iterator

from gateway.keys.apikeys import PREFIXES
from gateway.keys.entries import ANON_CLAIMS, SERVICE_ROLE_CLAIMS, KeyEntry

_TYPES = ("publishable", "secret")
_PREFIX_OF = {t: PREFIXES[t] for t in _TYPES}
DIGEST = 32
TAIL = 6  # characters of the display prefix after the type's
RECORD = DIGEST + 16 + 1 + TAIL
HOT_MAX = 50_000


def digest_of(key_hash: str) -> bytes:
    """The raw digest of a Management API ``hash`` (ValueError if it is not base64url)."""
    return base64.urlsafe_b64decode(key_hash + "=")


def _packed(digest: bytes, entry: KeyEntry) -> bytes | None:
    """The record of an entry that has nothing but the defaults, else None."""
    if entry.type not in _PREFIX_OF or entry.per_key or entry.per_ip or entry.expires_at or entry.restrictions \
            or entry.rules or entry.quota:
        return None
    if entry.claims is not (ANON_CLAIMS if entry.type == "publishable" else SERVICE_ROLE_CLAIMS):
        return None
    if not entry.prefix.startswith(_PREFIX_OF[entry.type]):
        return None
    try:
        tail = entry.prefix[len(_PREFIX_OF[entry.type]):].encode("ascii")
        key_id = bytes.fromhex(entry.id.replace("-", ""))
    except ValueError:  # UnicodeEncodeError included
        return None
    if len(tail) != TAIL or len(key_id) != 16 or _uuid_text(key_id) != entry.id:
        return None
    return digest + key_id + (b"\0" if entry.type == "publishable" else b"\1") + tail


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _entry(record: bytes) -> KeyEntry:
    key_type = _TYPES[record[DIGEST + 16]]
    claims = ANON_CLAIMS if key_type == "publishable" else SERVICE_ROLE_CLAIMS
    return KeyEntry(_uuid_text(record[DIGEST:DIGEST + 16]), key_type,
                    _PREFIX_OF[key_type] + record[DIGEST + 17:].decode("ascii"), claims["role"], claims)


def _first(digest: bytes | bytearray | memoryview) -> int:
    return int.from_bytes(digest[:8], "big")


class KeyTable:
    __slots__ = ("_prefixes", "_records", "_pinned", "_hot")

    def __init__(self) -> None:
        self._prefixes = array("Q")  # the records' first 8 bytes, big-endian: sorted
        self._records = bytearray()  # RECORD bytes a key, same order
        self._pinned: dict[bytes, KeyEntry] = {}  # keys with more than the defaults
        self._hot: dict[bytes, KeyEntry] = {}  # packed keys in use, as entries

    @classmethod
    def build(cls, entries: Iterable[tuple[str, KeyEntry]]) -> "KeyTable":
        """A table of ``(hash, entry)`` pairs (see ``Builder``)."""
        builder = Builder()
        for key_hash, entry in entries:
            builder.add(key_hash, entry)
        return builder.table()

    # --- the request path -------------------------------------------------------------------------

    def get_digest(self, digest: bytes) -> KeyEntry | None:
        entry = self._hot.get(digest)
        if entry is not None:
            return entry
        entry = self._pinned.get(digest)
        if entry is not None:
            return entry
        i = self._find(digest)
        if i < 0:
            return None
        entry = _entry(bytes(self._records[i * RECORD:(i + 1) * RECORD]))
        if len(self._hot) >= HOT_MAX:
            for stale in list(self._hot)[: HOT_MAX // 2]:
                del self._hot[stale]
        self._hot[digest] = entry
        return entry

    def _find(self, digest: bytes) -> int:
        """The record's index, or -1."""
        i = self._at(digest)
        return i if i < len(self._prefixes) and self._records[i * RECORD:i * RECORD + DIGEST] == digest else -1

    def _at(self, digest: bytes) -> int:
        """Where the record of ``digest`` is, or would be."""
        prefixes, first = self._prefixes, _first(digest)
        i = bisect_left(prefixes, first)
        while i < len(prefixes) and prefixes[i] == first and self._records[i * RECORD:i * RECORD + DIGEST] < digest:
            i += 1
        return i

    # --- changes ----------------------------------------------------------------------------------

    def put_digest(self, digest: bytes, entry: KeyEntry) -> None:
        self.pop_digest(digest)
        record = _packed(digest, entry)
        if record is None:
            self._pinned[digest] = entry
            return
        i = self._at(digest)
        self._prefixes.insert(i, _first(digest))
        self._records[i * RECORD:i * RECORD] = record
        self._hot[digest] = entry  # the entry given is the one in use (its minted JWT with it)

    def pop_digest(self, digest: bytes) -> KeyEntry | None:
        entry = self._hot.pop(digest, None)
        pinned = self._pinned.pop(digest, None)
        i = self._find(digest)
        if i >= 0:
            entry = entry or _entry(bytes(self._records[i * RECORD:(i + 1) * RECORD]))
            del self._prefixes[i]
            del self._records[i * RECORD:(i + 1) * RECORD]
        return entry or pinned

    def in_use(self) -> Iterator[tuple[bytes, KeyEntry]]:
        """The entries built so far (pinned ones and packed ones in use)."""
        yield from self._pinned.items()
        yield from self._hot.items()

    def keep(self, digest: bytes, entry: KeyEntry) -> None:
        """Use ``entry`` (an older, identical one, with its minted JWT) for ``digest``."""
        if digest in self._pinned:
            self._pinned[digest] = entry
        elif self._find(digest) >= 0:
            self._hot[digest] = entry

    # --- the mapping of the Management API's hash -------------------------------------------------

    def get(self, key_hash: str, default: KeyEntry | None = None) -> KeyEntry | None:
        try:
            entry = self.get_digest(digest_of(key_hash))
        except ValueError:
            return default
        return default if entry is None else entry

    def __getitem__(self, key_hash: str) -> KeyEntry:
        entry = self.get(key_hash)
        if entry is None:
            raise KeyError(key_hash)
        return entry

    def __contains__(self, key_hash: object) -> bool:
        return isinstance(key_hash, str) and self.get(key_hash) is not None

    def __setitem__(self, key_hash: str, entry: KeyEntry) -> None:
        digest = digest_of(key_hash)
        if len(digest) != DIGEST:
            raise ValueError("not a SHA256 hash")
        self.put_digest(digest, entry)

    def __delitem__(self, key_hash: str) -> None:
        if self.pop(key_hash) is None:
            raise KeyError(key_hash)

    def pop(self, key_hash: str, default: KeyEntry | None = None) -> KeyEntry | None:
        try:
            entry = self.pop_digest(digest_of(key_hash))
        except ValueError:
            return default
        return default if entry is None else entry

    def __len__(self) -> int:
        return len(self._prefixes) + len(self._pinned)


class Builder:
    """A table made in one go (a full reload): records packed by the database, in order, then
    whatever other keys there are, as entries (packed here when they can be)."""

    __slots__ = ("_records", "_sorted", "_extra", "_pinned")

    def __init__(self) -> None:
        self._records = bytearray()
        self._sorted = True
        self._extra: list[bytes] = []
        self._pinned: dict[bytes, KeyEntry] = {}

    def add_packed(self, records: Iterable[bytes]) -> None:
        """The next records in digest order (``store.RING_PACKED_SQL``); any of the wrong size is dropped."""
        out = self._records
        last = bytes(out[-RECORD:])
        for record in records:
            if len(record) != RECORD:
                continue
            if record <= last:
                self._sorted = False
            out += record
            last = record

    def add(self, key_hash: str, entry: KeyEntry) -> bool:
        """False for a hash that is not a SHA256 (a hand-edited row: no key can match it)."""
        try:
            digest = digest_of(key_hash)
        except ValueError:
            return False
        if len(digest) != DIGEST:
            return False
        record = _packed(digest, entry)
        if record is None:
            self._pinned[digest] = entry
        else:
            self._extra.append(record)
        return True

    def table(self) -> KeyTable:
        records, self._records = self._records, bytearray()
        if self._extra or not self._sorted:
            every = [bytes(records[i:i + RECORD]) for i in range(0, len(records), RECORD)] + self._extra
            every.sort()
            records = bytearray().join(every)
            self._extra = []
        table = KeyTable()
        view = memoryview(records)
        table._prefixes = array("Q", [_first(view[i:i + 8]) for i in range(0, len(records), RECORD)])
        view.release()
        table._records = records
        table._pinned, self._pinned = self._pinned, {}
        return table
