package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/products/store"
)

// Config is everything `sluice serve` needs. The zero value runs the
// embedded default: a local broker, the data generator and the HTTP API on
// loopback. Every field can come from the YAML config file; flags override.
type Config struct {
	// DataDir holds the embedded broker's log segments. Default ./sluice-data.
	DataDir string `yaml:"data_dir"`
	// HTTPAddr is the HTTP listen address. Default 127.0.0.1:8080; port 0
	// picks a free port.
	HTTPAddr string `yaml:"http"`
	// Brokers are the seed brokers of an existing Kafka cluster. Empty means:
	// start the embedded broker.
	Brokers []string `yaml:"brokers"`
	// EmbeddedKafkaAddr is where the embedded broker listens, reachable by
	// external Kafka clients. Default 127.0.0.1:9092; port 0 picks a free port.
	EmbeddedKafkaAddr string `yaml:"embedded_kafka_addr"`
	// KafkaListen is where the Kafka front door listens for partners' own
	// Kafka clients (SASL PLAIN with an API key, or OAUTHBEARER with a
	// JWT). Default 127.0.0.1:9094 with the embedded broker (port 0 when
	// EmbeddedKafkaAddr asks for port 0, so setups that pick free ports
	// never collide); with Brokers it is off unless set. "off" disables it;
	// port 0 picks a free port.
	KafkaListen string `yaml:"kafka_listen"`
	// KafkaAdvertised is the host:port the front door tells clients to
	// connect to (Metadata, FindCoordinator). Default: the listener's
	// address. Set it when listening on 0.0.0.0 or behind a load balancer.
	// Replicas on PostgreSQL each need their own: it names the replica's
	// broker in the front door's cluster (kafka_cluster.go).
	KafkaAdvertised string `yaml:"kafka_advertised"`
	// KafkaListenTLS secures the Kafka front door.
	KafkaListenTLS KafkaListenTLSConfig `yaml:"kafka_listen_tls"`
	// Generate runs the synthetic data generator. Default: on with the
	// embedded broker, off with Brokers.
	Generate *bool `yaml:"generate"`
	// GenerateRate is the generator's records per second across all products.
	// Default 50.
	GenerateRate float64 `yaml:"generate_rate"`
	// SchemaRegistryURL resolves schema ids not kept in the catalog. Optional.
	SchemaRegistryURL string `yaml:"schema_registry_url"`
	// CatalogDir holds product YAML files; SchemaDir the .avsc files they name.
	// Empty means the catalog built into the binary.
	CatalogDir string `yaml:"catalog_dir"`
	SchemaDir  string `yaml:"schema_dir"`
	// PseudonymSecretFile holds the hex server secret per-partner pseudonym
	// keys derive from; default <data-dir>/auth/pseudonym-secret, created
	// on first start. SLUICE_PSEUDONYM_SECRET overrides it. Replicas must
	// share it.
	PseudonymSecretFile string `yaml:"pseudonym_secret_file"`
	// ConsentTopic is the compacted topic of subscriber consent. Default
	// "telco.consent" (after TopicPrefix).
	ConsentTopic string `yaml:"consent_topic"`
	// TopicPrefix is put before every product's topic name, e.g. "prod.".
	TopicPrefix string `yaml:"topic_prefix"`
	// Kafka is how to reach an existing cluster (ignored for the embedded one).
	Kafka KafkaConfig `yaml:"kafka"`
	// Auth says which bearer tokens identify partners.
	Auth AuthConfig `yaml:"auth"`
	// Policy locates the Rego policy.
	Policy PolicyConfig `yaml:"policy"`
	// Store is where subscriptions, plans, API keys and usage live: a
	// postgres:// DSN (several replicas) or sqlite:PATH. Default
	// sqlite:<data-dir>/sluice.db.
	Store string `yaml:"store"`
	// Replica names this process among replicas sharing a PostgreSQL
	// store (quota shares are per replica). Default: host name, process
	// id and a random suffix, so it is unique per start.
	Replica string `yaml:"replica"`
	// Audit tunes the audit trail (always on).
	Audit AuditConfig `yaml:"audit"`
	// SeedDemo upserts the demo partners and an active subscription for each
	// of their grants into the store. Default: on with the embedded broker.
	SeedDemo *bool `yaml:"seed_demo"`
	// Plans are upserted into the store at start, after the demo seed:
	// the config wins over edits made in the store; plans it does not
	// name stay as they are. How an operator defines its commercial plans
	// next to its own Kafka (seed_demo is off there).
	Plans []PlanYAML `yaml:"plans"`
	// PartnersFile is the partner registry (YAML). Default: the built-in
	// demo registry.
	PartnersFile string `yaml:"partners_file"`
	// Stream tunes SSE streams.
	Stream StreamYAML `yaml:"stream"`
	// Hub tunes the shared upstream readers.
	Hub HubYAML `yaml:"hub"`
	// ShutdownTimeout bounds a clean shutdown. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// Logger receives logs; default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// PlanYAML is a plan in the config file (store.Plan; the store checks
// the values).
type PlanYAML struct {
	ID                 string        `yaml:"id"`
	Name               string        `yaml:"name"`
	RecordsPerSecond   int64         `yaml:"records_per_second"`
	BytesPerSecond     int64         `yaml:"bytes_per_second"`
	ConcurrentStreams  int           `yaml:"concurrent_streams"`
	MonthlyRecordQuota int64         `yaml:"monthly_record_quota"`
	ReplayWindow       time.Duration `yaml:"replay_window"` // e.g. 168h
	Formats            []string      `yaml:"formats"`       // json, ndjson, sse, kafka
	Default            bool          `yaml:"default"`
}

func (p PlanYAML) plan() store.Plan {
	return store.Plan{ID: p.ID, Name: p.Name, RecordsPerSecond: p.RecordsPerSecond, BytesPerSecond: p.BytesPerSecond,
		ConcurrentStreams: p.ConcurrentStreams, MonthlyRecordQuota: p.MonthlyRecordQuota, ReplayWindow: p.ReplayWindow,
		Formats: p.Formats, Default: p.Default}
}

// StreamYAML mirrors httpapi.StreamConfig.
type StreamYAML struct {
	Heartbeat    time.Duration `yaml:"heartbeat"`     // default 15s
	IdleCursor   time.Duration `yaml:"idle_cursor"`   // default 5s
	Retry        time.Duration `yaml:"retry"`         // default 2s
	WriteTimeout time.Duration `yaml:"write_timeout"` // default 30s
	MaxBatch     int           `yaml:"max_batch"`     // default 512
}

// HubYAML mirrors hub.Config.
type HubYAML struct {
	RingSize   int           `yaml:"ring_size"`   // events kept per partition per view; default 8192
	MaxWait    time.Duration `yaml:"max_wait"`    // reader long-poll; default 500ms
	FetchBytes int32         `yaml:"fetch_bytes"` // per partition per fetch; default 1 MiB
}

func (s StreamYAML) config() httpapi.StreamConfig {
	return httpapi.StreamConfig{Heartbeat: s.Heartbeat, IdleCursor: s.IdleCursor, Retry: s.Retry, WriteTimeout: s.WriteTimeout, MaxBatch: s.MaxBatch}
}

func (h HubYAML) config() hub.Config {
	return hub.Config{RingSize: h.RingSize, MaxWait: h.MaxWait, FetchBytes: h.FetchBytes}
}

// AuthConfig configures token verification. With none of JWKSURL,
// StaticKeyFiles or HS256 set, the gateway trusts its development key
// (<data-dir>/auth/dev-signing-key.pem, tokens from `sluice token`) if
// DevKey allows it: by default only with the embedded broker.
type AuthConfig struct {
	Issuer         string        `yaml:"issuer"`           // required iss; dev default "sluice-dev"
	Audience       string        `yaml:"audience"`         // required aud; dev default "sluice"
	JWKSURL        string        `yaml:"jwks_url"`         // fetched, cached, refreshed
	StaticKeyFiles []string      `yaml:"static_key_files"` // PEM public keys
	AllowHS256     bool          `yaml:"allow_hs256"`      // off unless set
	HS256SecretEnv string        `yaml:"hs256_secret_env"` // env var holding the HS256 secret
	Skew           time.Duration `yaml:"skew"`             // default 30s
	PartnerClaim   string        `yaml:"partner_claim"`    // default "sub"
	// DevKey trusts the data directory's development key. Default: true
	// with the embedded broker, false otherwise.
	DevKey *bool `yaml:"dev_key"`
}

// PolicyConfig locates the policy.
type PolicyConfig struct {
	// Dir holds the *.rego files (and *_test.rego). Default: the built-in
	// policy. A directory is watched and reloaded on change.
	Dir string `yaml:"dir"`
	// WatchInterval is how often Dir is checked. Default 250ms.
	WatchInterval time.Duration `yaml:"watch_interval"`
}

// KafkaListenTLSConfig is the Kafka front door's TLS (clients use
// security.protocol=SASL_SSL). See DESIGN.md, "Kafka front door".
type KafkaListenTLSConfig struct {
	// Enabled: TLS on the listener. Default true; false serves
	// SASL_PLAINTEXT (credentials in clear: loopback or a trusted network
	// only).
	Enabled *bool `yaml:"enabled"`
	// CertFile and KeyFile are the server certificate (chain) and key, PEM;
	// re-read when they change. Default with the embedded broker: a
	// self-signed certificate generated once in <data-dir>/kafka-tls/
	// (clients trust cert.pem as their CA). Required with Brokers.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// KafkaConfig says how to connect to an existing cluster.
type KafkaConfig struct {
	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`
	// ClientID names sluice to the brokers. Default "sluice".
	ClientID string `yaml:"client_id"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`   // PEM; default: system roots
	CertFile           string `yaml:"cert_file"` // client certificate (mTLS), optional
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // for tests only
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	// Mechanism: "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordEnv naming an environment variable holding it.
	Password    string `yaml:"password"`
	PasswordEnv string `yaml:"password_env"`
	// TokenFile holds the OAUTHBEARER token; re-read at every authentication
	// so a sidecar can rotate it.
	TokenFile string `yaml:"token_file"`
}

// LoadConfigFile decodes a YAML config file strictly: unknown keys are
// errors that name the file and line.
func LoadConfigFile(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config: %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return c, nil
}

func (c *Config) embedded() bool { return len(c.Brokers) == 0 }

// sharedStore reports whether the store is PostgreSQL, which replicas
// share (quota shares, the Kafka front door's cluster).
func (c *Config) sharedStore() bool { return strings.HasPrefix(c.Store, "postgres") }

// kafkaListenOn reports whether the Kafka front door runs (after defaults).
func (c *Config) kafkaListenOn() bool { return c.KafkaListen != "" && c.KafkaListen != "off" }

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "./sluice-data"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.EmbeddedKafkaAddr == "" {
		c.EmbeddedKafkaAddr = "127.0.0.1:9092"
	}
	if c.KafkaListen == "" {
		c.KafkaListen = "off"
		if c.embedded() {
			c.KafkaListen = "127.0.0.1:9094"
			if _, port, err := net.SplitHostPort(c.EmbeddedKafkaAddr); err == nil && port == "0" {
				c.KafkaListen = "127.0.0.1:0"
			}
		}
	}
	if c.KafkaListenTLS.Enabled == nil {
		on := true
		c.KafkaListenTLS.Enabled = &on
	}
	if c.Generate == nil {
		g := c.embedded()
		c.Generate = &g
	}
	if c.GenerateRate == 0 {
		c.GenerateRate = 50
	}
	if c.Auth.DevKey == nil {
		d := c.embedded() && c.Auth.JWKSURL == "" && len(c.Auth.StaticKeyFiles) == 0 && !c.Auth.AllowHS256
		c.Auth.DevKey = &d
	}
	c.Audit.defaults(c.DataDir)
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.ToLower(rand.Text()[:6]))
	}
	if c.Store == "" {
		c.Store = "sqlite:" + filepath.Join(c.DataDir, "sluice.db")
	}
	if c.SeedDemo == nil {
		sd := c.embedded()
		c.SeedDemo = &sd
	}
	if c.Policy.WatchInterval <= 0 {
		c.Policy.WatchInterval = 250 * time.Millisecond
	}
	if c.ConsentTopic == "" {
		c.ConsentTopic = "telco.consent"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "sluice"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate checks the config once, naming the field, value and bound.
func (c *Config) validate() error {
	var errs []error
	if c.GenerateRate < 0 || c.GenerateRate > 1e6 {
		errs = append(errs, fmt.Errorf("config: generate_rate %v must be between 0 and 1000000 records/s", c.GenerateRate))
	}
	switch strings.ToUpper(c.Kafka.SASL.Mechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.Kafka.SASL.Mechanism != "" && c.Kafka.SASL.Username == "" {
			errs = append(errs, fmt.Errorf("config: kafka.sasl.username is required for %s", c.Kafka.SASL.Mechanism))
		}
	case "OAUTHBEARER":
		if c.Kafka.SASL.TokenFile == "" {
			errs = append(errs, errors.New("config: kafka.sasl.token_file is required for OAUTHBEARER"))
		}
	default:
		errs = append(errs, fmt.Errorf("config: kafka.sasl.mechanism %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER", c.Kafka.SASL.Mechanism))
	}
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		errs = append(errs, errors.New("config: kafka.tls.cert_file and kafka.tls.key_file go together"))
	}
	if c.kafkaListenOn() {
		if _, _, err := net.SplitHostPort(c.KafkaListen); err != nil {
			errs = append(errs, fmt.Errorf("config: kafka_listen %q must be host:port or \"off\": %v", c.KafkaListen, err))
		}
		if c.KafkaAdvertised != "" {
			if _, _, err := net.SplitHostPort(c.KafkaAdvertised); err != nil {
				errs = append(errs, fmt.Errorf("config: kafka_advertised %q must be host:port: %v", c.KafkaAdvertised, err))
			}
		}
		t := c.KafkaListenTLS
		if (t.CertFile == "") != (t.KeyFile == "") {
			errs = append(errs, errors.New("config: kafka_listen_tls.cert_file and kafka_listen_tls.key_file go together"))
		}
		if *t.Enabled && t.CertFile == "" && !c.embedded() {
			errs = append(errs, errors.New("config: kafka_listen_tls.cert_file and key_file are required for the Kafka listener with brokers (or set kafka_listen_tls.enabled: false for plaintext on a trusted network)"))
		}
	}
	defaults := 0
	for i, p := range c.Plans {
		if slices.ContainsFunc(c.Plans[:i], func(q PlanYAML) bool { return q.ID == p.ID }) {
			errs = append(errs, fmt.Errorf("config: plans: id %q is listed twice", p.ID))
		}
		if p.Default {
			defaults++
		}
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("config: plans: %d plans are marked default; at most one may be", defaults))
	}
	if c.Hub.RingSize < 0 || c.Hub.RingSize > 1<<20 {
		errs = append(errs, fmt.Errorf("config: hub.ring_size %d must be between 1 and 1048576", c.Hub.RingSize))
	}
	return errors.Join(errs...)
}

// kafkaOpts turns the connection settings into franz-go options.
func (c *Config) kafkaOpts(seeds []string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID(c.Kafka.ClientID)}
	if c.embedded() {
		return opts, nil
	}
	if t := c.Kafka.TLS; t.Enabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for tests
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("config: kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("config: kafka.tls.ca_file %s holds no PEM certificate", t.CAFile)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("config: kafka.tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := c.Kafka.SASL
	pass := s.Password
	if s.PasswordEnv != "" {
		pass = os.Getenv(s.PasswordEnv)
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism()))
	case "OAUTHBEARER":
		file := s.TokenFile
		opts = append(opts, kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			tok, err := os.ReadFile(file)
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("kafka.sasl.token_file: %w", err)
			}
			return oauth.Auth{Token: strings.TrimSpace(string(tok))}, nil
		})))
	}
	return opts, nil
}
