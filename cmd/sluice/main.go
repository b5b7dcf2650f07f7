// Command sluice is the governed data-sharing gateway.
//
//	sluice serve [flags]     run the gateway (embedded broker and generator by default)
//	sluice token --partner ID  print a dev token for a demo partner
//	sluice bench [flags]     measure end-to-end SSE throughput and latency
//	sluice version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/gateway"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "bench":
		err = bench(args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(args[1:], stdout, stderr)
	case "policy":
		err = policyCmd(args[1:], stdout, stderr)
	case "audit":
		return auditCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "sluice", version)
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: sluice <command> [flags]

commands:
  serve     run the gateway; with no flags: embedded Kafka broker, synthetic
            telco data and the HTTP API on 127.0.0.1:8080
  token     print a development bearer token for a demo partner
  policy    test the Rego policy, or explain a partner's view of a product
  bench     end-to-end SSE throughput and produce-to-receive latency
  audit     verify or export the tamper-evident audit trail; keygen
  version   print the version

Run "sluice <command> -h" for a command's flags.
`)
}

type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			*s = append(*s, b)
		}
	}
	return nil
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML config file (flags override it)")
	dataDir := fs.String("data-dir", "", "data directory (default ./sluice-data)")
	httpAddr := fs.String("http", "", "HTTP listen address (default 127.0.0.1:8080)")
	var brokers stringList
	fs.Var(&brokers, "brokers", "seed brokers host:port,... of an existing Kafka cluster (default: start the embedded broker)")
	kafkaAddr := fs.String("embedded-kafka-addr", "", "embedded broker listen address (default 127.0.0.1:9092)")
	kafkaListen := fs.String("kafka-listen", "", `Kafka front door listen address for partners' Kafka clients (default 127.0.0.1:9094 with the embedded broker; with --brokers off unless set); "off" disables it`)
	generate := fs.String("generate", "", "run the synthetic data generator: true or false (default true with the embedded broker)")
	rate := fs.Float64("generate-rate", 0, "generator records per second across all products (default 50)")
	registry := fs.String("schema-registry", "", "Schema Registry URL for schema ids not in the catalog")
	storeDSN := fs.String("store", "", "store DSN: postgres://... for several replicas, or sqlite:PATH (default sqlite:<data-dir>/sluice.db)")
	catalogDir := fs.String("catalog", "", "directory of product YAML files (default: built-in catalog)")
	schemaDir := fs.String("schemas", "", "directory of .avsc files named by --catalog")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	debugListen := fs.String("debug-listen", "", "serve Go's profiles (net/http/pprof: /debug/pprof/) on this address, e.g. 127.0.0.1:6060; off by default, keep it on loopback or a management network")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	var cfg gateway.Config
	if *configFile != "" {
		var err error
		if cfg, err = gateway.LoadConfigFile(*configFile); err != nil {
			return err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.DataDir, *dataDir)
	set(&cfg.HTTPAddr, *httpAddr)
	set(&cfg.EmbeddedKafkaAddr, *kafkaAddr)
	set(&cfg.KafkaListen, *kafkaListen)
	set(&cfg.SchemaRegistryURL, *registry)
	set(&cfg.CatalogDir, *catalogDir)
	set(&cfg.Store, *storeDSN)
	set(&cfg.SchemaDir, *schemaDir)
	if len(brokers) > 0 {
		cfg.Brokers = brokers
	}
	if *rate != 0 {
		cfg.GenerateRate = *rate
	}
	switch *generate {
	case "":
	case "true", "1", "yes":
		t := true
		cfg.Generate = &t
	case "false", "0", "no":
		f := false
		cfg.Generate = &f
	default:
		return fmt.Errorf("serve: --generate %q: want true or false", *generate)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("serve: --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	g, err := gateway.New(ctx, cfg)
	if err != nil {
		return err
	}
	base := "http://" + g.HTTPAddr()
	fmt.Fprintf(stdout, `sluice is running (ready in %s)
  HTTP API   %s   (OpenAPI: %s/v1/openapi.json, metrics: %s/metrics)
`, time.Since(start).Round(time.Millisecond), base, base, base)
	if g.Embedded() {
		fmt.Fprintf(stdout, "  Kafka      %s   (embedded broker, data in %s)\n", g.KafkaAddr(), dataDirOf(cfg))
	} else {
		fmt.Fprintf(stdout, "  Kafka      %s\n", g.KafkaAddr())
	}
	if addr := g.KafkaProxyAddr(); addr != "" {
		sec := "SASL_PLAINTEXT"
		if g.KafkaProxyCert() != "" {
			sec = "SASL_SSL, CA/cert " + g.KafkaProxyCert()
		}
		fmt.Fprintf(stdout, "  Kafka API  %s   (partners' Kafka clients: %s; PLAIN with an API key or OAUTHBEARER with a token)\n", addr, sec)
	}
	if *debugListen != "" {
		addr, err := serveDebug(ctx, *debugListen, log)
		if err != nil {
			g.Close()
			return err
		}
		fmt.Fprintf(stdout, "  Profiles   http://%s/debug/pprof/   (--debug-listen)\n", addr)
	}
	self := selfCommand()
	dd := ""
	if cfg.DataDir != "" {
		dd = " --data-dir " + cfg.DataDir
	}
	fmt.Fprintf(stdout, `
Try it (as partner mvno-a; sluice token --partner lists the others):
  TOKEN=$(%[2]s token%[3]s --partner mvno-a)
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/v1/products
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/v1/products/cdr/view
  curl -s -H "Authorization: Bearer $TOKEN" '%[1]s/v1/products/cdr/records?from=earliest&limit=3'
  curl -sN -H "Authorization: Bearer $TOKEN" %[1]s/v1/products/network-quality/stream
  curl -sN -H "Authorization: Bearer $TOKEN" -H 'Last-Event-ID: <an id: from the stream>' %[1]s/v1/products/network-quality/stream

Ctrl-C stops it; streams are told to reconnect.
`, base, self, dd)
	return g.Run(ctx)
}

// serveDebug serves net/http/pprof's handlers on addr, on a listener of
// their own (never the API's), until ctx ends; it returns the bound address.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("serve: --debug-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener stopped", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr().String(), nil
}

// selfCommand is how the user runs this binary: "go run ./cmd/sluice"
// under go run, else the path it was started by.
func selfCommand() string {
	exe := os.Args[0]
	if strings.Contains(exe, "go-build") {
		return "go run ./cmd/sluice"
	}
	return exe
}

func dataDirOf(cfg gateway.Config) string {
	if cfg.DataDir == "" {
		return "./sluice-data"
	}
	return cfg.DataDir
}
