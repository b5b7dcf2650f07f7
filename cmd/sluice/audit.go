package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/audit"
)

// defaultAuditBrokers is the embedded broker's default address (serve's
// --embedded-kafka-addr default), so the audit commands find the topic of
// a local `sluice serve` without flags.
const defaultAuditBrokers = "127.0.0.1:9092"

// Exit codes of `sluice audit`.
const (
	auditOK     = 0
	auditBroken = 1
	auditUsage  = 2 // usage or I/O error
)

// auditCmd implements `sluice audit verify|export|keygen`. It returns the
// exit code itself: verify distinguishes a broken chain (1) from a usage
// or I/O error (2).
func auditCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		auditUsageText(stderr)
		return auditUsage
	}
	var code int
	var err error
	switch args[0] {
	case "verify":
		code, err = auditVerify(args[1:], stdout, stderr)
	case "export":
		err = auditExport(args[1:], stdout, stderr)
	case "keygen":
		err = auditKeygen(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		auditUsageText(stdout)
		return auditOK
	default:
		fmt.Fprintf(stderr, "sluice audit: unknown command %q\n", args[0])
		auditUsageText(stderr)
		return auditUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return auditOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice audit:", err)
		return auditUsage
	}
	return code
}

func auditUsageText(w io.Writer) {
	fmt.Fprint(w, `usage: sluice audit <command> [flags]

commands:
  verify   check every hash chain and checkpoint signature of the audit
           topic (or of an export); exit 0 ok, 1 broken, 2 usage/IO error
  export   write the audit topic as NDJSON (the stored bytes, one event a line)
  keygen   create the checkpoint signing key if missing and print its
           public JWK set (what GET /v1/audit/keys publishes)

Run "sluice audit <command> -h" for a command's flags.
`)
}

// topicFlags are the flags verify and export share.
type topicFlags struct {
	brokers stringList
	topic   *string
	timeout *time.Duration
}

func addTopicFlags(fs *flag.FlagSet) *topicFlags {
	tf := &topicFlags{}
	fs.Var(&tf.brokers, "brokers", "seed brokers host:port,... (default "+defaultAuditBrokers+", the embedded broker's default address)")
	tf.topic = fs.String("topic", audit.DefaultTopic, "audit topic (with the gateway's topic prefix, if any)")
	tf.timeout = fs.Duration("timeout", 2*time.Minute, "give up reading Kafka after this long")
	return tf
}

func (tf *topicFlags) read() audit.ReadOptions {
	b := []string(tf.brokers)
	if len(b) == 0 {
		b = []string{defaultAuditBrokers}
	}
	return audit.ReadOptions{Brokers: b, Topic: *tf.topic,
		KafkaOpts: []kgo.Opt{kgo.ClientID("sluice-audit"), kgo.DialTimeout(5 * time.Second), kgo.RequestRetries(3)}}
}

func auditVerify(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sluice audit verify [--brokers HOST:PORT] [--topic T] [--file F] [--keys FILE|URL]

Checks every chain of the audit topic (or of an NDJSON export with --file;
"-" reads standard input): sequence numbers without gap or repeat, each
event's prev hash, running hashes and Ed25519 checkpoint signatures, and
the links between an instance's successive chains. Reports the number of
events and chains verified, the first broken link with its position, and
how many events follow each chain's last checkpoint (unsealed).

Exit status: 0 verified, 1 broken, 2 usage or I/O error.

`)
		fs.PrintDefaults()
	}
	tf := addTopicFlags(fs)
	file := fs.String("file", "", "verify this NDJSON export instead of the topic (- for standard input)")
	keys := fs.String("keys", "", "trusted public keys: a JWK set file or URL (e.g. https://gw/v1/audit/keys); default: trust the keys the log publishes itself")
	requireClosed := fs.Bool("require-closed", false, "a chain without chain-close is broken (archives of stopped instances)")
	partial := fs.Bool("partial", false, "accept chains that start after seq 0 (an export of a time range)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return auditUsage, err
	}
	if fs.NArg() > 0 {
		return auditUsage, fmt.Errorf("verify: unexpected argument %q", fs.Arg(0))
	}
	opts := audit.VerifyOptions{RequireClosed: *requireClosed, AllowPartial: *partial}
	if *keys != "" {
		k, err := loadKeySet(*keys)
		if err != nil {
			return auditUsage, fmt.Errorf("verify: --keys %s: %w", *keys, err)
		}
		opts.Keys = k
	}
	var rep audit.Report
	var source string
	if *file != "" {
		var r io.Reader = os.Stdin
		source = "standard input"
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return auditUsage, fmt.Errorf("verify: %w", err)
			}
			defer f.Close()
			r, source = f, *file
		}
		var err error
		if rep, err = audit.Verify(r, opts); err != nil {
			return auditUsage, fmt.Errorf("verify: %s: %w", source, err)
		}
	} else {
		ro := tf.read()
		source = fmt.Sprintf("topic %s at %s", ro.Topic, strings.Join(ro.Brokers, ","))
		ctx, cancel := context.WithTimeout(context.Background(), *tf.timeout)
		defer cancel()
		var err error
		if rep, err = audit.VerifyTopic(ctx, ro, opts); err != nil {
			return auditUsage, fmt.Errorf("verify: %s: %w", source, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return auditUsage, err
		}
	} else {
		printReport(stdout, &rep, source, *keys)
	}
	if !rep.OK() {
		return auditBroken, nil
	}
	return auditOK, nil
}

func printReport(w io.Writer, rep *audit.Report, source, keys string) {
	fmt.Fprintf(w, "read %d events in %d chains (%d valid checkpoints) from %s\n", rep.Events, len(rep.Chains), rep.Checkpoints, source)
	if rep.KeysFromLog {
		fmt.Fprintf(w, "keys: trusting the %d key(s) the log publishes in its own chain-start events; this proves the log is\n"+
			"      consistent, not who wrote it: pass --keys with the published key set (GET /v1/audit/keys) for that\n", len(rep.Keys))
	} else {
		fmt.Fprintf(w, "keys: checkpoints verified against %s (%d key(s) used)\n", keys, len(rep.Keys))
	}
	for _, c := range rep.Chains {
		state := "closed"
		if !c.Closed {
			state = fmt.Sprintf("open, %d unsealed event(s) after the last checkpoint", c.Unsealed)
		}
		if c.Broken {
			state += ", BROKEN"
		}
		fmt.Fprintf(w, "chain %s: seq %d..%d, %d events, %d checkpoints, %s\n", c.ID, c.FirstSeq, c.LastSeq, c.Events, c.Checkpoints, state)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if rep.OK() {
		fmt.Fprintf(w, "OK: %d events in %d chains verified; %d unsealed\n", rep.Events, len(rep.Chains), rep.Unsealed())
		return
	}
	fmt.Fprintf(w, "BROKEN: %d problem(s); first broken link at %s\n", rep.ProblemCount, rep.Problems[0])
	for i, p := range rep.Problems[1:] {
		if i == 19 {
			fmt.Fprintf(w, "  ... %d more\n", rep.ProblemCount-21)
			break
		}
		fmt.Fprintln(w, " ", p)
	}
}

// loadKeySet reads a JWK set from a file or an http(s) URL.
func loadKeySet(src string) (map[string]ed25519.PublicKey, error) {
	var b []byte
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET: %s", resp.Status)
		}
		if b, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
			return nil, err
		}
	} else {
		var err error
		if b, err = os.ReadFile(src); err != nil {
			return nil, err
		}
	}
	return audit.ParseKeySet(b)
}

func auditExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sluice audit export [--brokers HOST:PORT] [--topic T] [--from TIME] [--to TIME] > audit.ndjson

Writes the audit topic to standard output as NDJSON: each line is exactly
the stored bytes of one event, partition by partition in offset order, so
"sluice audit verify --file" checks the export as it would the topic.
TIME is RFC 3339 (2026-09-18T10:00:00Z) or a duration before now (24h).
An export of a time range holds partial chains: verify it with --partial.

`)
		fs.PrintDefaults()
	}
	tf := addTopicFlags(fs)
	fromS := fs.String("from", "", "first event time to export (inclusive)")
	toS := fs.String("to", "", "export events before this time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export: unexpected argument %q", fs.Arg(0))
	}
	now := time.Now()
	from, err := parseWhen(*fromS, now)
	if err != nil {
		return fmt.Errorf("export: --from: %w", err)
	}
	to, err := parseWhen(*toS, now)
	if err != nil {
		return fmt.Errorf("export: --to: %w", err)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return fmt.Errorf("export: --from %s must be before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *tf.timeout)
	defer cancel()
	w := bufio.NewWriterSize(stdout, 64<<10)
	n := 0
	err = audit.ReadTopic(ctx, tf.read(), func(pos audit.Position, r *kgo.Record) error {
		if (!from.IsZero() && r.Timestamp.Before(from)) || (!to.IsZero() && !r.Timestamp.Before(to)) {
			return nil
		}
		if bytes.IndexByte(r.Value, '\n') >= 0 {
			fmt.Fprintf(stderr, "sluice audit: warning: %s holds a newline; it is not an audit event and will not verify\n", pos)
		}
		n++
		w.Write(r.Value)
		return w.WriteByte('\n')
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stderr, "exported %d events\n", n)
	return nil
}

// parseWhen reads RFC 3339 or a duration before now; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-09-18T10:00:00Z) or a duration before now (24h)", s)
	}
	return now.Add(-d), nil
}

func auditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sluice audit keygen [--data-dir DIR | --key FILE]

Creates the audit checkpoint signing key (Ed25519, PKCS#8 PEM, mode 0600)
if it does not exist, and prints the public JWK set to publish for
"sluice audit verify --keys". The private key is never printed.

`)
		fs.PrintDefaults()
	}
	dataDir := fs.String("data-dir", "./sluice-data", "data directory; the key is DIR/audit/signing-key.pem")
	keyFile := fs.String("key", "", "key file (overrides --data-dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keygen: unexpected argument %q", fs.Arg(0))
	}
	path := *keyFile
	if path == "" {
		path = audit.SigningKeyPath(*dataDir)
	}
	key, err := audit.LoadOrCreateSigningKey(path)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(stderr, "signing key %s (kid %s)\n", path, audit.KeyID(pub))
	_, err = fmt.Fprintf(stdout, "%s\n", audit.KeySet(pub))
	return err
}
