#!/usr/bin/env python3
"""Readiness probe for the test broker, speaking the Kafka wire protocol.

Usage: probe.py HOST:PORT [--node-id N] [-v]

Sends ApiVersions (v0) and Metadata (v4) requests and exits 0 only if both
succeed and the broker lists node N (default 1) among the live brokers, i.e.
the broker is unfenced and serves client requests. No Kafka tools or JVM
needed, so it is cheap to call in a polling loop.
"""
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18


def request(sock, api_key, version, corr, body=b""):
    client_id = b"sluice-probe"
    hdr = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    got_corr = struct.unpack(">i", data[:4])[0]
    if got_corr != corr:
        raise RuntimeError("correlation id mismatch")
    return data[4:]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)
        self.o += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.o:self.o + n].decode()
        self.o += n
        return s


def probe(addr, node_id, verbose):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.settimeout(5)
        r = Reader(request(s, API_VERSIONS, 0, 1))
        err = r.take(">h")
        if err != 0:
            raise RuntimeError("ApiVersions error_code=%d" % err)
        ranges = {}
        for _ in range(r.take(">i")):
            k, lo, hi = r.take(">hhh")
            ranges[k] = (lo, hi)
        lo, hi = ranges.get(API_METADATA, (99, -1))
        if not lo <= 4 <= hi:
            raise RuntimeError("broker does not support Metadata v4 (%d..%d)" % (lo, hi))
        # Metadata v4: topics=null (all), allow_auto_topic_creation=false
        r = Reader(request(s, API_METADATA, 4, 2, struct.pack(">ib", -1, 0)))
        r.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take(">i")):
            nid = r.take(">i")
            bhost = r.string()
            bport = r.take(">i")
            r.string()  # rack
            brokers.append((nid, bhost, bport))
        cluster_id = r.string()
        controller = r.take(">i")
        if verbose:
            print("api_keys=%d brokers=%s cluster_id=%s controller=%d"
                  % (len(ranges), brokers, cluster_id, controller), file=sys.stderr)
        if not any(b[0] == node_id for b in brokers):
            raise RuntimeError("node %d not yet among live brokers %s" % (node_id, brokers))


def main():
    args = sys.argv[1:]
    verbose = "-v" in args
    node_id = 1
    if "--node-id" in args:
        node_id = int(args[args.index("--node-id") + 1])
    addr = [a for a in args if ":" in a]
    if not addr:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        probe(addr[0], node_id, verbose)
    except Exception as e:  # noqa: BLE001 - any failure means "not ready"
        if verbose:
            print("probe %s: not ready: %s" % (addr[0], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
