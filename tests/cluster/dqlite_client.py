#!/usr/bin/python3
"""dqlite_client.py — a small client for dqlite's wire protocol (version 1, as served by
libdqlite 1.11.1), standard library only: find the leader, add nodes, run SQL.

The protocol (dqlite src/protocol.h, request.h, response.h, tuple.c): after connecting, the
client sends one 8-byte word, the protocol version (1, little endian). Every message is an
8-byte header (body size in 8-byte words: uint32; type: uint8; schema: uint8; unused: uint16)
and a body of 8-byte-aligned fields: uint64 little endian, text NUL-terminated and padded to 8
bytes. Parameters are a tuple: a count byte and one type byte per value, padded to 8 bytes,
then the values. Rows come as a column count, the column names, then per row a header of 4-bit
type codes (padded to 8 bytes) and the values; a word 0xff..ff ends the result, 0xee..ee ends a
batch (the server sends the next one by itself).

As a library: Node(address) connects; leader(), cluster(), add(), assign(), transfer(),
open(), exec_sql(), query_sql(), prepare() / query() / finalize(). find_leader(addresses) asks
each address until one names a leader that answers as leader. As a command (the README's
recipe uses these):

  dqlite_client.py join LEADER ID ADDRESS         add node ID at ADDRESS and make it a voter
  dqlite_client.py leader ADDRESS...              print the leader's id and address
  dqlite_client.py cluster ADDRESS...             print every node: id address role
  dqlite_client.py exec ADDRESS... -- SQL [PARAM...]   run SQL on the leader (db "feox.db")
  dqlite_client.py query ADDRESS... -- SQL [PARAM...]  print the rows as tab-separated text
  dqlite_client.py transfer ADDRESS... -- ID      hand leadership to node ID
"""
import socket
import struct
import sys
import time

PROTOCOL_VERSION = 1
# request types
REQ_LEADER, REQ_OPEN, REQ_PREPARE, REQ_QUERY, REQ_FINALIZE = 0, 3, 4, 6, 7
REQ_EXEC_SQL, REQ_QUERY_SQL = 8, 9
REQ_ADD, REQ_ASSIGN, REQ_CLUSTER, REQ_TRANSFER = 12, 13, 16, 17
# response types
RESP_FAILURE, RESP_SERVER, RESP_SERVERS, RESP_DB, RESP_STMT, RESP_RESULT, RESP_ROWS, \
    RESP_EMPTY = 0, 1, 3, 4, 5, 6, 7, 8
# value types (SQLite's, and dqlite's own)
T_INTEGER, T_FLOAT, T_TEXT, T_BLOB, T_NULL = 1, 2, 3, 4, 5
T_UNIXTIME, T_ISO8601, T_BOOLEAN = 9, 10, 11
ROWS_DONE = 0xFFFFFFFFFFFFFFFF
ROWS_PART = 0xEEEEEEEEEEEEEEEE
ROLES = {0: "voter", 1: "standby", 2: "spare"}
DB_NAME = "feox.db"


class DqliteError(Exception):
    """A FAILURE response: code is SQLite's (extended) code, or dqlite's."""

    def __init__(self, code, message):
        super().__init__("%s (code %d)" % (message, code))
        self.code = code
        self.message = message


def _pad8(n):
    return (n + 7) & ~7


def _text(s):
    b = s.encode() + b"\0"
    return b + b"\0" * (_pad8(len(b)) - len(b))


def _u64(v):
    return struct.pack("<Q", v)


def _params(values):
    if len(values) > 255:
        raise ValueError("at most 255 parameters")
    types, body = [], b""
    for v in values:
        if v is None:
            types.append(T_NULL)
            body += _u64(0)
        elif isinstance(v, bool):
            types.append(T_INTEGER)
            body += struct.pack("<q", int(v))
        elif isinstance(v, int):
            types.append(T_INTEGER)
            body += struct.pack("<q", v)
        elif isinstance(v, float):
            types.append(T_FLOAT)
            body += struct.pack("<d", v)
        elif isinstance(v, str):
            types.append(T_TEXT)
            body += _text(v)
        elif isinstance(v, (bytes, bytearray)):
            types.append(T_BLOB)
            body += _u64(len(v)) + bytes(v) + b"\0" * (_pad8(len(v)) - len(v))
        else:
            raise TypeError("cannot bind %r" % (v,))
    head = bytes([len(values)] + types)
    return head + b"\0" * (_pad8(len(head)) - len(head)) + body


class _Reader:
    def __init__(self, body):
        self.b, self.p = body, 0

    def u64(self):
        v = struct.unpack_from("<Q", self.b, self.p)[0]
        self.p += 8
        return v

    def i64(self):
        v = struct.unpack_from("<q", self.b, self.p)[0]
        self.p += 8
        return v

    def f64(self):
        v = struct.unpack_from("<d", self.b, self.p)[0]
        self.p += 8
        return v

    def text(self):
        end = self.b.index(b"\0", self.p)
        s = self.b[self.p:end].decode()
        self.p = self.p + _pad8(end - self.p + 1)
        return s

    def blob(self):
        n = self.u64()
        v = self.b[self.p:self.p + n]
        self.p += _pad8(n)
        return bytes(v)

    def done(self):
        return self.p >= len(self.b)


def _failure(body):
    """The DqliteError of a FAILURE body. dqlite 1.11 writes a query's failure after the column
    names it had already put in the response buffer (gateway.c failure() appends to the buffer
    query__batch filled): so, if code + message do not span the body, skip a column header."""
    r = _Reader(body)
    try:
        code, msg = r.u64(), r.text()
        if r.done() and code < 1 << 32:
            return DqliteError(code, msg)
        r = _Reader(body)
        for _ in range(r.u64()):
            r.text()
        code, msg = r.u64(), r.text()
        if r.done():
            return DqliteError(code, msg)
    except (ValueError, struct.error, UnicodeDecodeError):
        pass
    return DqliteError(-1, "unreadable failure response %r" % body[:64])


class Node:
    """One client connection to one dqlite node."""

    def __init__(self, address, timeout=5.0):
        self.address = address
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.sendall(_u64(PROTOCOL_VERSION))
        self.db_id = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("%s closed the connection" % self.address)
            buf += chunk
        return bytes(buf)

    def _send(self, mtype, body, schema=0):
        assert len(body) % 8 == 0
        self.sock.sendall(struct.pack("<IBBH", len(body) // 8, mtype, schema, 0) + body)

    def _response(self, expect):
        words, mtype, _schema, _extra = struct.unpack("<IBBH", self._recv(8))
        r = _Reader(self._recv(words * 8))
        if mtype == RESP_FAILURE:
            raise _failure(r.b)
        if mtype != expect:
            raise DqliteError(-1, "unexpected response type %d (wanted %d)" % (mtype, expect))
        return r

    def leader(self):
        """(id, address) of the leader this node knows, (0, "") if none."""
        self._send(REQ_LEADER, _u64(0))
        r = self._response(RESP_SERVER)
        return r.u64(), r.text()

    def cluster(self):
        """[(id, address, role name)] of the current configuration."""
        self._send(REQ_CLUSTER, _u64(1))
        r = self._response(RESP_SERVERS)
        return [(r.u64(), r.text(), ROLES.get(r.u64(), "?")) for _ in range(r.u64())]

    def add(self, node_id, address):
        self._send(REQ_ADD, _u64(node_id) + _text(address))
        self._response(RESP_EMPTY)

    def assign(self, node_id, role=0):
        self._send(REQ_ASSIGN, _u64(node_id) + _u64(role))
        self._response(RESP_EMPTY)

    def transfer(self, node_id):
        self._send(REQ_TRANSFER, _u64(node_id))
        self._response(RESP_EMPTY)

    def open(self, name=DB_NAME):
        self._send(REQ_OPEN, _text(name) + _u64(0) + _text(""))
        self.db_id = self._response(RESP_DB).u64() & 0xFFFFFFFF
        return self.db_id

    def _db(self):
        if self.db_id is None:
            self.open()
        return self.db_id

    def exec_sql(self, sql, params=()):
        """Run SQL (one or more statements; params bind the first); (last_insert_id, changes)."""
        self._send(REQ_EXEC_SQL, _u64(self._db()) + _text(sql) + _params(list(params)))
        r = self._response(RESP_RESULT)
        return r.u64(), r.u64()

    def prepare(self, sql):
        """A statement id. dqlite 1.11 prepares on any node (only running it needs the leader):
        a statement prepared on a follower keeps its connection when the node becomes leader."""
        self._send(REQ_PREPARE, _u64(self._db()) + _text(sql))
        r = self._response(RESP_STMT)
        r.u64()  # db id (uint32) and statement id (uint32)
        return struct.unpack_from("<I", r.b, 4)[0]

    def query(self, stmt_id, params=()):
        """Rows of a prepared statement."""
        self._send(REQ_QUERY, struct.pack("<II", self._db(), stmt_id) + _params(list(params)))
        return self._rows()

    def finalize(self, stmt_id):
        self._send(REQ_FINALIZE, struct.pack("<II", self._db(), stmt_id))
        self._response(RESP_EMPTY)

    def query_sql(self, sql, params=()):
        """Rows of one statement, as lists of Python values."""
        self._send(REQ_QUERY_SQL, _u64(self._db()) + _text(sql) + _params(list(params)))
        return self._rows()

    def _rows(self):
        rows = []
        while True:
            r = self._response(RESP_ROWS)
            ncol = r.u64()
            for _ in range(ncol):
                r.text()
            while True:
                marker = struct.unpack_from("<Q", r.b, r.p)[0]
                if marker in (ROWS_DONE, ROWS_PART):
                    r.p += 8
                    break
                head_len = _pad8((ncol + 1) // 2)
                head = r.b[r.p:r.p + head_len]
                r.p += head_len
                row = []
                for i in range(ncol):
                    t = (head[i // 2] >> (4 * (i % 2))) & 0x0F
                    if t in (T_INTEGER, T_UNIXTIME):
                        row.append(r.i64())
                    elif t == T_FLOAT:
                        row.append(r.f64())
                    elif t in (T_TEXT, T_ISO8601):
                        row.append(r.text())
                    elif t == T_BLOB:
                        row.append(r.blob())
                    elif t == T_NULL:
                        r.u64()
                        row.append(None)
                    elif t == T_BOOLEAN:
                        row.append(bool(r.u64()))
                    else:
                        raise DqliteError(-1, "unknown value type %d" % t)
                rows.append(row)
            if marker == ROWS_DONE:
                return rows


def find_leader(addresses, timeout=30.0, exclude=()):
    """(id, address) of the current leader, asking each address in turn until one names a leader
    (not in exclude) that also calls itself leader; raises TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for a in addresses:
            try:
                with Node(a, timeout=1.0) as n:
                    node_id, addr = n.leader()
                if node_id == 0 or addr in exclude:
                    continue
                with Node(addr, timeout=1.0) as n:
                    if n.leader() == (node_id, addr):
                        return node_id, addr
            except (OSError, ConnectionError, DqliteError):
                continue
        if time.monotonic() > deadline:
            raise TimeoutError("no leader among %s" % ", ".join(addresses))
        time.sleep(0.05)


def _param(s):
    """A command-line parameter: an integer if it reads as one, NULL for the word NULL."""
    if s == "NULL":
        return None
    try:
        return int(s)
    except ValueError:
        return s


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[1], argv[2:]
    if "--" in rest:
        i = rest.index("--")
        addrs, args = rest[:i], rest[i + 1:]
    else:
        addrs, args = rest, []
    try:
        if cmd == "join":
            if len(rest) != 3:
                print("usage: join LEADER ID ADDRESS", file=sys.stderr)
                return 2
            _leader_id, leader = find_leader([rest[0]])
            with Node(leader) as n:
                n.add(int(rest[1]), rest[2])
                n.assign(int(rest[1]), 0)
            return 0
        _lid, leader = find_leader(addrs)
        if cmd == "leader":
            print(_lid, leader)
        elif cmd == "cluster":
            with Node(leader) as n:
                for node_id, a, role in n.cluster():
                    print(node_id, a, role)
        elif cmd == "exec":
            with Node(leader) as n:
                _last, changes = n.exec_sql(args[0], [_param(p) for p in args[1:]])
            print("changes:", changes)
        elif cmd == "query":
            with Node(leader) as n:
                for row in n.query_sql(args[0], [_param(p) for p in args[1:]]):
                    print("\t".join("NULL" if v is None else str(v) for v in row))
        elif cmd == "transfer":
            with Node(leader) as n:
                n.transfer(int(args[0]))
        else:
            print("unknown command %s" % cmd, file=sys.stderr)
            return 2
    except DqliteError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
