// Package gateway is sluice's runtime: it wires the catalog, the upstream
// Kafka connection (or the embedded broker), the shared readers, the data
// generator and the front doors, owns every goroutine, and shuts them down
// in a fixed order (see DESIGN.md, "Shutdown order").
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/consent"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/gateway/internal/metrics"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/gateway/kafkaproxy"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/products/store"
	"github.com/sluicehq/sluice/schemas"
)

// Gateway is one running sluice process. New prepares everything that can
// fail fast (config, catalog, listeners, broker); Run serves until its
// context ends and then shuts down cleanly.
type Gateway struct {
	cfg     Config
	catalog *products.Catalog
	metrics *metrics.Metrics

	broker  *kfake.Cluster // nil with external brokers
	cluster *upstream.Cluster
	hub     *hub.Hub
	api     *httpapi.Server
	httpLn  net.Listener

	kafka      *kafkaproxy.Server // the Kafka front door; nil when off
	kafkaAhead atomic.Int64       // encoded bytes the front door's sessions keep read ahead (kafka_ahead.go)
	kafkaLn    net.Listener
	kafkaNodes *kafkaNodes // the replicas' Kafka cluster, nil with one replica
	kafkaCert  string      // the listener's certificate file ("" without TLS)

	partners *products.Partners
	engine   *policy.Engine
	verifier *auth.Verifier
	consent  *consent.Store
	access   *access
	store    store.Store
	limits   *limiter
	audit    *auditor

	schemaIDs *schemaIDs // registry ids of view schemas (Kafka Avro output)

	streams       context.Context
	cancelStreams context.CancelFunc
}

// New validates cfg, loads the catalog, starts the embedded broker when no
// brokers are configured, ensures product topics exist there, and binds the
// HTTP listener.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, metrics: metrics.New()}
	var err error
	if g.catalog, err = loadCatalog(cfg); err != nil {
		return nil, err
	}
	for _, p := range g.catalog.Products {
		p.Topic = cfg.TopicPrefix + p.Topic
	}
	if g.partners, err = loadPartners(cfg, g.catalog); err != nil {
		return nil, err
	}
	if g.engine, err = policy.New(policy.Options{Dir: cfg.Policy.Dir, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	secret, err := pseudonymSecret(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if g.store, err = store.Open(ctx, cfg.Store); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if *cfg.SeedDemo {
		if err := store.SeedDemo(ctx, g.store, g.partners); err != nil {
			g.store.Close()
			return nil, err
		}
	}
	for _, p := range cfg.Plans {
		if err := g.store.UpsertPlan(ctx, p.plan()); err != nil {
			g.store.Close()
			return nil, fmt.Errorf("config: plans: %w", err)
		}
	}
	jwks, err := g.newVerifier(ctx)
	if err != nil {
		g.store.Close()
		return nil, err
	}
	seeds := cfg.Brokers
	if cfg.embedded() {
		if g.broker, err = startBroker(cfg); err != nil {
			return nil, err
		}
		seeds = g.broker.ListenAddrs()
	}
	fail := func(err error) (*Gateway, error) {
		if g.audit != nil {
			g.audit.close()
		}
		g.closeKafka()
		g.verifier.Close()
		g.store.Close()
		return nil, err
	}
	opts, err := cfg.kafkaOpts(seeds)
	if err != nil {
		return fail(err)
	}
	if g.cluster, err = upstream.Dial(opts...); err != nil {
		return fail(err)
	}
	consentTopic := cfg.TopicPrefix + cfg.ConsentTopic
	if g.broker != nil {
		if err := ensureTopics(ctx, g.cluster.Admin(), g.catalog, consentTopic); err != nil {
			return fail(err)
		}
	}
	if g.audit, err = openAudit(ctx, cfg, opts, g.metrics.Registry); err != nil {
		return fail(err)
	}
	g.consent = consent.New(g.cluster, consentTopic, cfg.Logger, products.PurposeBilling, products.PurposeFraudPrevention,
		products.PurposeNetworkAnalytics, products.PurposeMarketing, products.PurposeRegulatory)
	g.consent.OnChange = g.audit.consentChanged
	var reg schemas.Registry
	if cfg.SchemaRegistryURL != "" {
		if reg, err = schemas.NewRegistryClient(cfg.SchemaRegistryURL); err != nil {
			return fail(fmt.Errorf("config: schema_registry_url: %w", err))
		}
	}
	var sources []hub.Source
	layouts := map[string]*schemas.Layout{}
	for _, p := range g.catalog.Products {
		var vs []schemas.SchemaVersion
		for _, v := range p.Versions {
			vs = append(vs, schemas.SchemaVersion{Version: v.Version, ID: v.ID, Schema: v.Schema})
		}
		codec, err := schemas.NewCodec(p.ID, schemas.Framing(p.Framing), vs, reg)
		if err != nil {
			return fail(fmt.Errorf("catalog: product %s: %w", p.ID, err))
		}
		sources = append(sources, hub.Source{Product: p.ID, Topic: p.Topic, Codec: codec})
		layouts[p.ID] = codec.Layout()
	}
	g.access = newAccess(g.verifier, g.partners, g.engine, g.consent, secret, layouts)
	g.access.log = cfg.Logger
	g.access.store = g.store
	g.schemaIDs = newSchemaIDs(g.store)
	g.limits = newLimiter(g.store, cfg.Replica, cfg.sharedStore(), g.metrics, cfg.Logger)
	g.access.limits = g.limits
	g.access.audit = g.audit
	g.metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_policy_evaluations_total",
		Help: "OPA evaluations (full and partial); they happen per subscription and policy revision, never per record.",
	}, func() float64 { return float64(g.engine.Evaluations()) }))
	g.metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_kafka_read_ahead_bytes",
		Help: "Encoded record bytes the Kafka front door's sessions keep read ahead of their consumers (bounded at 256 MiB).",
	}, func() float64 { return float64(g.kafkaAhead.Load()) }))
	g.hub = hub.New(cfg.Hub.config(), g.cluster, g.metrics, cfg.Logger, sources)
	g.streams, g.cancelStreams = context.WithCancel(context.Background())
	g.api = httpapi.New(httpapi.Config{
		Catalog: g.catalog, Hub: g.hub, Cluster: g.cluster, Metrics: g.metrics, Log: cfg.Logger,
		Stream: cfg.Stream.config(), Streams: g.streams,
		Authorize: g.access.authorize, Changed: g.access.changed, JWKS: jwks,
		Checks:        g.checks,
		Subscriptions: &subscriptions{store: g.store, partners: g.partners, audit: g.audit},
		Keys:          &keys{store: g.store, partners: g.partners, audit: g.audit},
		Audit:         g.audit,
		AuditReader:   newAuditReader(g),
		Registry:      registry{g},
	})
	if g.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fail(fmt.Errorf("http: listen on %s: %w (use --http to pick another address)", cfg.HTTPAddr, err))
	}
	if err := g.newKafkaProxy(); err != nil {
		g.httpLn.Close()
		return fail(err)
	}
	return g, nil
}

// newKafkaProxy binds the Kafka front door's listener (see kafka.go).
func (g *Gateway) newKafkaProxy() error {
	cfg := g.cfg
	if !cfg.kafkaListenOn() {
		return nil
	}
	pc := kafkaproxy.Config{Backend: &kafkaBackend{g: g}, Offsets: kafkaOffsets{s: g.store}, Logger: cfg.Logger, AdvertisedAddr: cfg.KafkaAdvertised,
		Observer: kafkaMetrics{g.metrics}}
	if *cfg.KafkaListenTLS.Enabled {
		var hosts []string
		for _, a := range []string{cfg.KafkaListen, cfg.KafkaAdvertised} {
			if h, _, err := net.SplitHostPort(a); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
		cert, key, err := kafkaTLSFiles(cfg, hosts)
		if err != nil {
			return err
		}
		if pc.TLS, err = kafkaTLSConfig(cert, key, cfg.Logger); err != nil {
			return err
		}
		g.kafkaCert = cert
	}
	var err error
	if g.kafkaLn, err = net.Listen("tcp", cfg.KafkaListen); err != nil {
		return fmt.Errorf("kafka: listen on %s: %w (use --kafka-listen to pick another address, or --kafka-listen off)", cfg.KafkaListen, err)
	}
	if cfg.sharedStore() { // replicas: one cluster (kafka_cluster.go)
		advertised := cfg.KafkaAdvertised
		if advertised == "" {
			advertised = g.kafkaLn.Addr().String()
		}
		if g.kafkaNodes, err = newKafkaNodes(g.store, cfg.Replica, advertised, cfg.Logger); err != nil {
			g.kafkaLn.Close()
			return fmt.Errorf("kafka_advertised %q: %w", advertised, err)
		}
		pc.AdvertisedAddr, pc.NodeID, pc.Cluster = advertised, g.kafkaNodes.me.NodeID, g.kafkaNodes
	}
	if g.kafka, err = kafkaproxy.New(pc); err != nil {
		g.kafkaLn.Close()
		return fmt.Errorf("kafka_listen: %w", err)
	}
	return nil
}

// checks are readiness checks beyond Kafka and the catalog.
func (g *Gateway) checks() map[string]error {
	var pol error
	if err := g.engine.LastError(); err != nil {
		pol = &httpapi.Degraded{Err: fmt.Errorf("policy reload failed, revision %s stays in force: %w", g.engine.Revision(), err)}
	}
	return map[string]error{"policy": pol, "consent": g.consent.Err(), "audit": g.audit.Healthy()}
}

func loadPartners(cfg Config, cat *products.Catalog) (*products.Partners, error) {
	var reg *products.Partners
	var err error
	if cfg.PartnersFile == "" {
		reg, err = products.LoadDefaultPartners()
	} else {
		reg, err = products.LoadPartners(os.DirFS(filepath.Dir(cfg.PartnersFile)), filepath.Base(cfg.PartnersFile))
	}
	if err != nil {
		return nil, err
	}
	if err := reg.Validate(cat); err != nil {
		return nil, err
	}
	return reg, nil
}

// newVerifier sets up token verification; it returns the JWKS to publish
// when the gateway signs its own development tokens.
func (g *Gateway) newVerifier(ctx context.Context) ([]byte, error) {
	a := g.cfg.Auth
	ac := auth.Config{
		Issuer: a.Issuer, Audience: a.Audience, JWKSURL: a.JWKSURL, StaticKeyFiles: a.StaticKeyFiles,
		AllowHS256: a.AllowHS256, Skew: a.Skew, PartnerClaim: a.PartnerClaim, Logger: g.cfg.Logger,
	}
	if a.HS256SecretEnv != "" {
		ac.HS256Secret = []byte(os.Getenv(a.HS256SecretEnv))
	}
	var jwks []byte
	if *a.DevKey {
		key, kid, err := auth.DevKey(g.cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		pub := key.Public()
		ac.StaticKeys = append(ac.StaticKeys, pub)
		if ac.Issuer == "" {
			ac.Issuer = auth.DevIssuer
		}
		if ac.Audience == "" {
			ac.Audience = auth.DevAudience
		}
		if jwks, err = auth.JWKS(auth.PublicKey{KID: kid, Key: pub}); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	} else if a.JWKSURL == "" && len(a.StaticKeyFiles) == 0 && !a.AllowHS256 {
		return nil, errors.New("config: auth needs jwks_url, static_key_files or allow_hs256 (or dev_key: true for a test setup)")
	}
	v, err := auth.NewVerifier(ctx, ac)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	g.verifier = v
	return jwks, nil
}

func loadCatalog(cfg Config) (*products.Catalog, error) {
	if cfg.CatalogDir == "" {
		return products.LoadDefault()
	}
	schemaFS := schemas.Files
	var sfs = os.DirFS(cfg.CatalogDir)
	if cfg.SchemaDir != "" {
		return products.Load(sfs, ".", os.DirFS(cfg.SchemaDir))
	}
	return products.Load(sfs, ".", schemaFS)
}

// startBroker starts the embedded kfake broker persisting under DataDir.
func startBroker(cfg Config) (*kfake.Cluster, error) {
	host, port, err := net.SplitHostPort(cfg.EmbeddedKafkaAddr)
	if err != nil {
		return nil, fmt.Errorf("config: embedded_kafka_addr %q: %w", cfg.EmbeddedKafkaAddr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("config: embedded_kafka_addr %q: bad port", cfg.EmbeddedKafkaAddr)
	}
	dir := filepath.Join(cfg.DataDir, "kafka")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		kfake.ClusterID("sluice-embedded"),
		// Apply retention every minute so the data dir stays bounded.
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "60000"}),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
	}
	if n != 0 {
		opts = append(opts, kfake.Ports(n))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w (use --embedded-kafka-addr to pick another address)", cfg.EmbeddedKafkaAddr, err)
	}
	return c, nil
}

// ensureTopics creates each product's topic with the product's retention,
// or updates the retention of an existing one.
func ensureTopics(ctx context.Context, adm *kadm.Client, cat *products.Catalog, consentTopic string) error {
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": &compact}, consentTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("embedded broker: topic %s: %w", consentTopic, err)
	}
	for _, p := range cat.Products {
		ms := strconv.FormatInt(p.ReplayWindow.Milliseconds(), 10)
		bytes := strconv.FormatInt(p.RetentionBytes, 10)
		cfgs := map[string]*string{"retention.ms": &ms, "retention.bytes": &bytes}
		resp, err := adm.CreateTopic(ctx, p.Partitions, 1, cfgs, p.Topic)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			_, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
				{Op: kadm.SetConfig, Name: "retention.ms", Value: &ms},
				{Op: kadm.SetConfig, Name: "retention.bytes", Value: &bytes},
			}, p.Topic)
		}
		if err != nil {
			return fmt.Errorf("embedded broker: topic %s: %w", p.Topic, err)
		}
	}
	return nil
}

// HTTPAddr is the bound HTTP address.
func (g *Gateway) HTTPAddr() string { return g.httpLn.Addr().String() }

// KafkaAddr is the embedded broker's address, or the first seed broker.
func (g *Gateway) KafkaAddr() string {
	if g.broker != nil {
		return g.broker.ListenAddrs()[0]
	}
	return g.cfg.Brokers[0]
}

// KafkaProxyAddr is the Kafka front door's bound address, "" when it is
// off. Partners' Kafka clients connect here, never to the upstream brokers.
func (g *Gateway) KafkaProxyAddr() string {
	if g.kafkaLn == nil {
		return ""
	}
	return g.kafkaLn.Addr().String()
}

// KafkaProxyCert is the Kafka front door's certificate file (clients of a
// self-signed one trust it as their CA), "" without TLS.
func (g *Gateway) KafkaProxyCert() string { return g.kafkaCert }

// Embedded reports whether this gateway runs its own broker.
func (g *Gateway) Embedded() bool { return g.broker != nil }

// Catalog is the loaded catalog.
func (g *Gateway) Catalog() *products.Catalog { return g.catalog }

// Run serves until ctx is done, then shuts down in order:
//
//  1. stop accepting HTTP connections;
//  2. end every SSE stream with a "shutdown" event (clients reconnect
//     elsewhere with Last-Event-ID) and wait for handlers; then close the
//     Kafka front door (stop accepting, close every connection, wait for
//     them: Kafka clients reconnect elsewhere and resume from their
//     committed offsets, which are in the store); then write the usage
//     still unflushed to the store;
//  3. stop the generator and flush what it produced;
//  4. stop the upstream readers;
//  5. close Kafka clients;
//  6. close the embedded broker, which syncs its segments to the data dir.
func (g *Gateway) Run(ctx context.Context) error {
	log := g.cfg.Logger
	hubCtx, stopHub := context.WithCancel(context.Background())
	var hubDone sync.WaitGroup
	hubDone.Go(func() { g.hub.Run(hubCtx) })
	hubDone.Go(func() { g.consent.Run(hubCtx) })
	if g.cfg.Policy.Dir != "" {
		hubDone.Go(func() { g.engine.Watch(hubCtx, g.cfg.Policy.WatchInterval) })
	}
	changes, cerr := g.store.Changes(hubCtx)
	if cerr != nil {
		stopHub()
		hubDone.Wait()
		g.closeKafka()
		return fmt.Errorf("store: %w", cerr)
	}
	hubDone.Go(func() {
		// A subscription or key changed (here or on another replica):
		// open streams authorize again and end if access is gone.
		for c := range changes {
			if c.Kind == store.ChangePlan || c.Kind == store.ChangeResync {
				g.limits.plansChanged()
			}
			if c.Kind == store.ChangeSubscription || c.Kind == store.ChangeKey || c.Kind == store.ChangePlan || c.Kind == store.ChangeResync {
				g.access.wake()
			}
		}
	})
	revs, unsubscribe := g.engine.Subscribe()
	fails, unsubscribeFails := g.engine.SubscribeFailures()
	hubDone.Go(func() {
		defer unsubscribe()
		defer unsubscribeFails()
		for {
			select {
			case <-hubCtx.Done():
				return
			case err := <-fails:
				// An attempt to change the policy that did not take effect:
				// the trail names the files tried and the revision kept.
				if aerr := g.audit.policyReload(hubCtx, g.engine.Revision(), g.cfg.Policy.Dir, err); aerr != nil {
					g.audit.logFailure("policy reload failure", aerr, "revision", g.engine.Revision())
				}
			case rev := <-revs:
				log.Info("policy reloaded", "revision", rev)
				if err := g.audit.policyReload(hubCtx, rev, g.cfg.Policy.Dir, nil); err != nil {
					g.audit.logFailure("policy reload", err, "revision", rev)
				}
				g.access.policyChanged(rev)
			}
		}
	})

	limCtx, stopLimits := context.WithCancel(context.Background())
	var limDone sync.WaitGroup
	limDone.Go(func() { g.limits.run(limCtx) })
	limDone.Go(func() { g.audit.runConsent(limCtx) })
	// The policy in force when serving starts is the first one recorded.
	if err := g.audit.policyReload(ctx, g.engine.Revision(), g.cfg.Policy.Dir, nil); err != nil {
		g.audit.logFailure("policy at start", err, "revision", g.engine.Revision())
	}

	genCtx, stopGen := context.WithCancel(context.Background())
	var genDone sync.WaitGroup
	var producer *kgo.Client
	if *g.cfg.Generate {
		var err error
		producer, err = g.startGenerator(genCtx, &genDone)
		if err != nil {
			stopGen()
			stopLimits()
			limDone.Wait()
			g.limits.close()
			g.audit.close()
			stopHub()
			hubDone.Wait()
			g.closeKafka()
			return err
		}
	}

	srv := &http.Server{Handler: g.api, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(g.httpLn) }()
	kafkaErr := make(chan error, 1)
	var kafkaDone sync.WaitGroup
	nodesCtx, stopNodes := context.WithCancel(context.Background())
	var nodesDone sync.WaitGroup
	if g.kafkaNodes != nil {
		g.kafkaNodes.refresh(ctx) // the other replicas, before the first client asks
		nodesDone.Go(func() { g.kafkaNodes.run(nodesCtx) })
	}
	if g.kafka != nil {
		kafkaDone.Go(func() {
			if err := g.kafka.Serve(g.kafkaLn); !errors.Is(err, kafkaproxy.ErrServerClosed) {
				kafkaErr <- err
			}
		})
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("http: %w", err)
	case err = <-kafkaErr:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	// 1 and 2: Shutdown closes the listener at once; streams get their final
	// event when cancelStreams fires, then their handlers return.
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	g.cancelStreams()
	if e := <-shut; e != nil {
		log.Warn("http shutdown incomplete", "err", e)
		srv.Close()
	}
	// 2a: the Kafka front door: the other replicas stop listing this one
	// (its groups move to them), then its sessions release their hub
	// readers and stream slots and settle their deliveries before usage is
	// flushed.
	stopNodes()
	nodesDone.Wait()
	if g.kafka != nil {
		g.kafka.Close()
		kafkaDone.Wait()
	}
	// 2b: every delivery is done: meter the last of it into the store.
	stopLimits()
	limDone.Wait()
	g.limits.close()
	// 2c: the audit chain's last summaries are in: seal it.
	g.audit.close()
	// 3
	stopGen()
	genDone.Wait()
	if producer != nil {
		if e := producer.Flush(sctx); e != nil {
			log.Warn("generator flush incomplete", "err", e)
		}
		producer.Close()
	}
	// 4
	stopHub()
	hubDone.Wait()
	// 5 and 6
	g.closeKafka()
	g.verifier.Close()
	g.store.Close()
	log.Info("stopped")
	return err
}

func (g *Gateway) startGenerator(ctx context.Context, wg *sync.WaitGroup) (*kgo.Client, error) {
	gen, err := generate.New(g.catalog, generate.Options{Rate: g.cfg.GenerateRate, Seed: time.Now().UnixNano()})
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	opts, err := g.cfg.kafkaOpts(g.seeds())
	if err != nil {
		return nil, err
	}
	producer, err := kgo.NewClient(append(opts, kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	log := g.cfg.Logger
	var failed sync.Once
	wg.Go(func() {
		consentTopic := g.cfg.TopicPrefix + g.cfg.ConsentTopic
		err := gen.Run(ctx, func(ctx context.Context, r generate.Record) error {
			if r.Product == generate.ConsentProduct {
				r.Topic = consentTopic
			}
			producer.Produce(ctx, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.Time}, func(_ *kgo.Record, err error) {
				if err != nil && !errors.Is(err, context.Canceled) {
					failed.Do(func() { log.Warn("generator produce failed", "topic", r.Topic, "err", err) })
				}
			})
			return nil
		})
		if err != nil {
			log.Error("generator stopped", "err", err)
		}
	})
	return producer, nil
}

func (g *Gateway) seeds() []string {
	if g.broker != nil {
		return g.broker.ListenAddrs()
	}
	return g.cfg.Brokers
}

func (g *Gateway) closeKafka() {
	if g.cluster != nil {
		g.cluster.Close()
		g.cluster = nil
	}
	if g.broker != nil {
		g.broker.Close()
		g.broker = nil
	}
}

// Close releases what New acquired when Run is never called.
func (g *Gateway) Close() {
	if g.httpLn != nil {
		g.httpLn.Close()
	}
	if g.kafka != nil {
		g.kafka.Close()
	}
	if g.kafkaLn != nil {
		g.kafkaLn.Close()
	}
	g.cancelStreams()
	if g.audit != nil {
		g.audit.close()
	}
	g.closeKafka()
	g.verifier.Close()
	g.store.Close()
}

// AuditKeys is the JWK set of the key signing this gateway's audit
// checkpoints (GET /v1/audit/keys serves it).
func (g *Gateway) AuditKeys() []byte { return g.audit.PublicKeys() }

// EmbeddedBroker is the embedded kfake cluster; nil with external brokers.
// Tests inject protocol-level faults through it.
func (g *Gateway) EmbeddedBroker() *kfake.Cluster { return g.broker }

// AuditTopic is the audit topic's full name.
func (g *Gateway) AuditTopic() string { return g.audit.Topic() }

// Store is the gateway's store (subscriptions, keys, plans, usage).
func (g *Gateway) Store() store.Store { return g.store }

// Engine is the policy engine (tests reload it).
func (g *Gateway) Engine() *policy.Engine { return g.engine }

// ConsentTopic is the consent topic's full name.
func (g *Gateway) ConsentTopic() string { return g.consent.Topic() }
