// Package generate produces synthetic telco data for every product of a
// catalog: charging records, per-cell network KPIs, fraud alerts and IoT
// telemetry, Avro-encoded with the product's schema versions, plain or
// Schema Registry framed, deterministic for a given seed.
//
// New builds a small world once: five MVNOs (mvno-a .. mvno-e) with
// subscriber pools carrying valid IMSIs, E.164 MSISDNs with German mobile
// prefixes, IMEIs and ICCIDs with Luhn check digits; a grid of LTE and NR
// cells around Berlin and Munich; IoT devices of three platforms. Records
// are drawn from that world, so a subscriber's charging records, fraud
// alerts and keys stay consistent, and fraud alerts follow the patterns
// they describe (SIM swap, IRSF bursts, Wangiri call-backs, impossible
// roaming, device cloning) in the charging records before them.
//
// Products the generator has no model for still get records: every field
// is filled from its Avro type (and its name, for identifiers), so a new
// catalog entry works in the demo before anyone writes a model for it.
//
// The package owns identifier formats too (ValidIMSI, ValidIMEI, Luhn, ...)
// so tests and other packages can check them.
//
// It knows nothing of Kafka: Run paces records at a rate and hands them to a
// callback; the caller produces them wherever it likes.
package generate
