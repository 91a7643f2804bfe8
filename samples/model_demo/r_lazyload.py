"""Read character vectors out of an R package's lazy-load data base, without R.

Debian's r-cran-janeaustenr ships the six Jane Austen novels as R character vectors (one
element per line of the Project Gutenberg text) inside `data/Rdata.rdb`, indexed by
`data/Rdata.rdx`. Installing R just to read them would pull in a few hundred megabytes, so
this module reads the two files directly:

* `Rdata.rdx` is a gzip-compressed R serialization of a list whose `variables` element maps
  each object name to an (offset, length) pair in the `.rdb` file;
* each `.rdb` record is a 4-byte big-endian uncompressed length followed by a zlib stream
  holding one R serialization (XDR format, version 2 or 3).

Only the subset of the serialization format that such data bases use is implemented (vectors,
pairlists, symbols, strings, attributes, references); anything else raises ValueError.
"""

import gzip
import struct
import zlib

# SEXP type codes and the serializer's special markers (R Internals, "Serialization Formats").
_NILSXP, _SYMSXP, _LISTSXP = 0, 1, 2
_CHARSXP, _LGLSXP, _INTSXP, _REALSXP, _STRSXP, _VECSXP = 9, 10, 13, 14, 16, 19
_REFSXP, _NILVALUE_SXP = 255, 254
_GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _BASENAMESPACE_SXP = 253, 242, 241, 247
_MISSINGARG_SXP, _UNBOUNDVALUE_SXP = 251, 252

_HAS_ATTR, _HAS_TAG = 1 << 9, 1 << 10


class _Symbol(str):
    """An R symbol (distinguished from a plain string only for readability)."""


class _Unserializer:
    def __init__(self, data):
        if data[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.data = data
        self.pos = 2
        self.refs = []
        version = self._int()
        self._int()  # writer's R version
        self._int()  # minimal reader version
        if version == 3:
            n = self._int()  # then the native encoding's name
            self.pos += n
        elif version != 2:
            raise ValueError(f"unsupported R serialization version {version}")

    def _int(self):
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def _length(self):
        n = self._int()
        if n == -1:  # long vector: two more words
            hi, lo = self._int(), self._int()
            n = (hi << 32) | lo
        return n

    def read(self):
        flags = self._int()
        kind = flags & 0xFF
        if kind in (_NILVALUE_SXP, _NILSXP):
            return None
        if kind in (_GLOBALENV_SXP, _EMPTYENV_SXP, _BASEENV_SXP, _BASENAMESPACE_SXP,
                    _MISSINGARG_SXP, _UNBOUNDVALUE_SXP):
            return None
        if kind == _REFSXP:
            index = flags >> 8
            if index == 0:
                index = self._int()
            return self.refs[index - 1]
        if kind == _SYMSXP:
            sym = _Symbol(self.read())
            self.refs.append(sym)
            return sym
        if kind == _CHARSXP:
            n = self._int()
            if n == -1:
                return None  # NA_character_
            raw = self.data[self.pos:self.pos + n]
            self.pos += n
            return raw.decode("utf-8", errors="replace")
        if kind == _LISTSXP:
            # A pairlist: attributes, tag, car, then the cdr (the rest of the list).
            items = []
            while True:
                if flags & _HAS_ATTR:
                    self.read()
                tag = self.read() if flags & _HAS_TAG else None
                items.append((tag, self.read()))
                flags = self._int()
                kind = flags & 0xFF
                if kind != _LISTSXP:
                    self.pos -= 4
                    self.read()  # the terminating NULL (or a dotted tail, ignored)
                    return items
        if kind in (_LGLSXP, _INTSXP):
            n = self._length()
            value = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif kind == _REALSXP:
            n = self._length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        elif kind in (_STRSXP, _VECSXP):
            value = [self.read() for _ in range(self._length())]
        else:
            raise ValueError(f"R serialization type {kind} not supported by this reader")
        if flags & _HAS_ATTR:
            attrs = dict(self.read())
            names = attrs.get("names")
            if names is not None and kind == _VECSXP:
                return dict(zip(names, value))
        return value


def unserialize(data):
    """Decode one R serialization (bytes starting with b'X\\n') into Python values:
    vectors become lists, named lists become dicts, NA strings become None."""
    return _Unserializer(data).read()


def read_lazyload_db(prefix):
    """Return {name: value} for every object in the lazy-load data base `prefix`.rdx/.rdb
    (e.g. prefix = '.../janeaustenr/data/Rdata')."""
    with gzip.open(prefix + ".rdx", "rb") as f:
        index = unserialize(f.read())
    with open(prefix + ".rdb", "rb") as f:
        db = f.read()
    objects = {}
    for name, (offset, length) in index["variables"].items():
        offset, length = int(offset), int(length)
        record = db[offset:offset + length]
        (size,) = struct.unpack_from(">I", record, 0)
        payload = zlib.decompress(record[4:])
        if len(payload) != size:
            raise ValueError(f"{name}: decompressed {len(payload)} bytes, expected {size}")
        objects[name] = unserialize(payload)
    return objects
