#!/usr/bin/env python3
"""A partner's librdkafka client (Python confluent-kafka) for sluice's Kafka
front door, driven by TestIntegrationLibrdkafkaOAuthBearer.

    client.py info
        one JSON line: confluent-kafka and librdkafka versions, whether this
        librdkafka can fetch OAUTHBEARER tokens itself (builtin feature oidc)
    client.py [auth options] topics
        "broker HOST:PORT" and "topic NAME" lines from list_topics()
    client.py [auth options] consume TOPIC [--group G]
        reads TOPIC from the beginning until every partition is at its end
        (enable.partition.eof): "PARTITION OFFSET VALUE" lines, the value's
        bytes as they came; with a group, subscribes, commits synchronously
        at the end and prints "committed PARTITION OFFSET" lines

Auth options (always SASL_SSL, trusting the front door's certificate):
    --bootstrap HOST:PORT --ca PEM
    --auth callback   oauth_cb returns the JWT in $SLUICE_TOKEN as it is
                      (librdkafka never looks inside it; its lifetime given
                      to librdkafka is --lifetime seconds from now, so that
                      an expired JWT reaches the gateway and is judged there)
    --auth oidc       sasl.oauthbearer.method=oidc: librdkafka fetches the
                      token from --token-url with OAuth 2.0 client
                      credentials (--client-id, secret in $SLUICE_CLIENT_SECRET)
    --auth scram      SASL/SCRAM-SHA-512 with an API key: username
                      $SLUICE_SCRAM_USER (the key id), password
                      $SLUICE_SCRAM_PASSWORD (the secret)

Exit status: 0 done; 3 the login failed (an authentication error, printed
as "AUTHENTICATION: ..." on stderr); 4 a topic error; 5 time out; 2 usage.
"""

import argparse
import json
import os
import sys
import time

import confluent_kafka as ck
from confluent_kafka import KafkaError, KafkaException, TopicPartition

EXIT_AUTH, EXIT_TOPIC, EXIT_TIMEOUT = 3, 4, 5


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Failed(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def has_oidc():
    # librdkafka refuses a builtin.features value it was built without.
    try:
        ck.Producer({"builtin.features": "oidc", "log_level": 3}).flush(0)
        return True
    except KafkaException:
        return False


def is_auth_error(err):
    return err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)


def config(args, errors):
    def on_error(err):
        errors.append(err)
        log("error_cb:", err.name(), err.str())

    conf = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": args.ca,
        "sasl.mechanisms": "OAUTHBEARER",
        "client.id": "sluice-librdkafka-test",
        "error_cb": on_error,
        # Fail fast: one login attempt is enough to judge.
        "reconnect.backoff.ms": 200,
        "reconnect.backoff.max.ms": 1000,
        "socket.connection.setup.timeout.ms": 5000,
    }
    if args.auth == "callback":
        token = os.environ.get("SLUICE_TOKEN", "")
        if not token:
            raise Failed(2, "--auth callback needs $SLUICE_TOKEN")

        def oauth_cb(_oauthbearer_config):
            # (token, expiry in seconds since the epoch, principal)
            return token, time.time() + args.lifetime, args.principal

        conf["oauth_cb"] = oauth_cb
    elif args.auth == "scram":
        conf.update({
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": os.environ.get("SLUICE_SCRAM_USER", ""),
            "sasl.password": os.environ.get("SLUICE_SCRAM_PASSWORD", ""),
        })
    else:
        conf.update({
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.token.endpoint.url": args.token_url,
            "sasl.oauthbearer.client.id": args.client_id,
            "sasl.oauthbearer.client.secret": os.environ.get("SLUICE_CLIENT_SECRET", ""),
        })
    return conf


def check_errors(errors):
    for err in errors:
        if is_auth_error(err):
            raise Failed(EXIT_AUTH, "AUTHENTICATION: %s: %s" % (err.name(), err.str()))
        if err.fatal():
            raise Failed(1, "fatal: %s: %s" % (err.name(), err.str()))


def metadata(client, errors, deadline, topic=None):
    """list_topics, retried until it answers, a login fails or time is up."""
    while True:
        # list_topics does not serve error_cb, poll does: a failed login
        # shows there first.
        m = client.poll(0.1)
        if m is not None and m.error() is not None and is_auth_error(m.error()):
            raise Failed(EXIT_AUTH, "AUTHENTICATION: %s" % m.error().str())
        check_errors(errors)
        try:
            return client.list_topics(topic, timeout=0.5)
        except KafkaException as e:
            err = e.args[0]
            if is_auth_error(err):
                raise Failed(EXIT_AUTH, "AUTHENTICATION: %s: %s" % (err.name(), err.str()))
            if time.monotonic() > deadline:
                raise Failed(EXIT_TIMEOUT, "list_topics: %s" % err.str())


def topics(args):
    errors = []
    deadline = time.monotonic() + args.timeout
    c = ck.Consumer(dict(config(args, errors), **{"group.id": "sluice-metadata-only"}))
    try:
        md = metadata(c, errors, deadline)
        check_errors(errors)
        for b in sorted(md.brokers.values(), key=lambda b: b.id):
            print("broker %s:%d" % (b.host, b.port))
        for name in sorted(md.topics):
            if md.topics[name].error is not None:
                raise Failed(EXIT_TOPIC, "topic %s: %s" % (name, md.topics[name].error))
            print("topic %s" % name)
    finally:
        c.close()


def consume(args):
    errors = []
    deadline = time.monotonic() + args.timeout
    conf = dict(config(args, errors), **{
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 200,
    })
    # confluent-kafka wants a group.id; without subscribe() no group is joined.
    conf["group.id"] = args.group or "sluice-assign-only"
    conf["enable.auto.commit"] = False
    if args.group:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c = ck.Consumer(conf)
    out = sys.stdout.buffer
    try:
        md = metadata(c, errors, deadline, args.topic)
        t = md.topics.get(args.topic)
        if t is None or t.error is not None:
            raise Failed(EXIT_TOPIC, "topic %s: %s" % (args.topic, t.error if t else "not in metadata"))
        parts = set(t.partitions)
        if args.group:
            c.subscribe([args.topic], on_assign=lambda _c, ps: log("assigned", sorted(p.partition for p in ps)))
        else:
            c.assign([TopicPartition(args.topic, p, ck.OFFSET_BEGINNING) for p in sorted(parts)])
        at_end, last = set(), {}
        while at_end != parts:
            check_errors(errors)
            if time.monotonic() > deadline:
                raise Failed(EXIT_TIMEOUT, "at the end of partitions %s of %s after %ss" % (sorted(at_end), sorted(parts), args.timeout))
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                    continue
                if is_auth_error(m.error()):
                    raise Failed(EXIT_AUTH, "AUTHENTICATION: %s" % m.error().str())
                if m.error().code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    raise Failed(EXIT_TOPIC, "topic %s: %s" % (args.topic, m.error().str()))
                log("consume error:", m.error().str())
                continue
            at_end.discard(m.partition())
            last[m.partition()] = m.offset()
            out.write(b"%d %d " % (m.partition(), m.offset()) + (m.value() or b"") + b"\n")
        out.flush()
        if args.group and last:
            done = c.commit(offsets=[TopicPartition(args.topic, p, o + 1) for p, o in sorted(last.items())], asynchronous=False)
            for tp in done:
                if tp.error is not None:
                    raise Failed(1, "commit %d: %s" % (tp.partition, tp.error))
            for tp in c.committed([TopicPartition(args.topic, p) for p in sorted(parts)], timeout=10):
                if tp.offset >= 0:
                    print("committed %d %d" % (tp.partition, tp.offset), flush=True)
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--ca")
    ap.add_argument("--auth", choices=("callback", "oidc", "scram"), default="callback")
    ap.add_argument("--principal", default="partner")
    ap.add_argument("--lifetime", type=float, default=3600)
    ap.add_argument("--token-url")
    ap.add_argument("--client-id")
    ap.add_argument("--timeout", type=float, default=20)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    sub.add_parser("topics")
    cp = sub.add_parser("consume")
    cp.add_argument("topic")
    cp.add_argument("--group")
    args = ap.parse_args()
    if args.cmd == "info":
        v = ck.version()
        print(json.dumps({"confluent_kafka": v if isinstance(v, str) else v[0], "librdkafka": ck.libversion()[0], "oidc": has_oidc()}))
        return 0
    if not args.bootstrap or not args.ca:
        ap.error("--bootstrap and --ca are required")
    try:
        {"topics": topics, "consume": consume}[args.cmd](args)
    except Failed as f:
        log(str(f))
        return f.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
