# Tests of the shipped policy: every demo contract, the denials, and that
# fields nobody names are left out (so the gateway drops them).
# Run with `sluice policy test` or `go test ./policy/`.
package sluice_test

import data.sluice

# ---------------------------------------------------------------------------
# Demo partners, as the partner registry describes them.
# ---------------------------------------------------------------------------

mvno_a := {"id": "mvno-a", "name": "MVNO A", "type": "mvno", "attributes": {"mvno_id": "mvno-a"}}

mvno_b := {"id": "mvno-b", "name": "MVNO B", "type": "mvno", "attributes": {"mvno_id": "mvno-b"}}

iot_fleet := {"id": "iot-fleet", "name": "IoT Fleet", "type": "iot", "attributes": {"platform": "iot-fleet"}}

enterprise_x := {"id": "enterprise-x", "name": "Enterprise X", "type": "enterprise", "attributes": {"cells": enterprise_cells}}

# Berlin's first 5G site and two sectors of Munich's first, as in the demo
# partner registry.
enterprise_cells := ["262-01-2B0000001", "262-01-2B0000002", "262-01-2B0000003", "262-01-2B0006001", "262-01-2B0006002"]

internal_noc := {"id": "internal-noc", "name": "Network Operations Centre", "type": "internal", "attributes": {}}

internal_fraud := {"id": "internal-fraud", "name": "Fraud Team", "type": "internal", "attributes": {}}

regulator := {"id": "regulator", "name": "Regulator", "type": "regulator", "attributes": {}}

# ---------------------------------------------------------------------------
# Products, as the catalog classifies their current schemas.
# ---------------------------------------------------------------------------

cdr := {"id": "cdr", "fields": [
	{"name": "record_id", "classification": "public", "type": "string"},
	{"name": "imsi", "classification": "direct-identifier", "type": "string"},
	{"name": "msisdn", "classification": "direct-identifier", "type": "string"},
	{"name": "imei", "classification": "direct-identifier", "type": "string"},
	{"name": "mvno_id", "classification": "public", "type": "string"},
	{"name": "service", "classification": "public", "type": "enum"},
	{"name": "start_time", "classification": "quasi-identifier", "type": "long"},
	{"name": "duration_s", "classification": "public", "type": "int"},
	{"name": "bytes_up", "classification": "public", "type": "long"},
	{"name": "bytes_down", "classification": "public", "type": "long"},
	{"name": "cell_id", "classification": "quasi-identifier", "type": "string"},
	{"name": "roaming", "classification": "public", "type": "boolean"},
	{"name": "visited_mcc", "classification": "quasi-identifier", "type": "string"},
	{"name": "charge", "classification": "sensitive", "type": "double"},
	{"name": "currency", "classification": "public", "type": "string"},
]}

fraud_alerts := {"id": "fraud-alerts", "fields": [
	{"name": "alert_id", "classification": "public", "type": "string"},
	{"name": "type", "classification": "sensitive", "type": "enum"},
	{"name": "score", "classification": "sensitive", "type": "double"},
	{"name": "imsi", "classification": "direct-identifier", "type": "string"},
	{"name": "msisdn", "classification": "direct-identifier", "type": "string"},
	{"name": "imei", "classification": "direct-identifier", "type": "string"},
	{"name": "mvno_id", "classification": "public", "type": "string"},
	{"name": "detected_at", "classification": "public", "type": "long"},
	{"name": "status", "classification": "sensitive", "type": "enum"},
	{"name": "rule", "classification": "public", "type": "string"},
	{"name": "evidence", "classification": "sensitive", "type": "string"},
	{"name": "related_numbers", "classification": "direct-identifier", "type": "array"},
]}

network_quality := {"id": "network-quality", "fields": [{"name": name, "classification": "public", "type": "string"} |
	some name in sluice.network_quality_fields
]}

device_telemetry := {"id": "device-telemetry", "fields": [
	{"name": "device_id", "classification": "direct-identifier", "type": "string"},
	{"name": "imei", "classification": "direct-identifier", "type": "string"},
	{"name": "iccid", "classification": "direct-identifier", "type": "string"},
	{"name": "platform", "classification": "public", "type": "string"},
	{"name": "device_type", "classification": "public", "type": "string"},
	{"name": "firmware", "classification": "public", "type": "string"},
	{"name": "battery_pct", "classification": "public", "type": "double"},
	{"name": "rsrp_dbm", "classification": "public", "type": "double"},
	{"name": "sinr_db", "classification": "public", "type": "double"},
	{"name": "cell_id", "classification": "quasi-identifier", "type": "string"},
	{"name": "lat", "classification": "quasi-identifier", "type": "double"},
	{"name": "lon", "classification": "quasi-identifier", "type": "double"},
	{"name": "temperature_c", "classification": "public", "type": "double"},
	{"name": "error_codes", "classification": "public", "type": "array"},
	{"name": "event_time", "classification": "public", "type": "long"},
]}

# A request: partner, product and the purpose of the grant.
req(partner, product, purpose) := {
	"partner": partner,
	"grant": {"product": product.id, "purpose": purpose},
	"product": product,
}

# The same request with one record, to test the row rule.
with_record(r, record) := object.union(r, {"record": record})

# The product with one more field the contracts do not know.
plus_field(product, f) := object.union(product, {"fields": array.concat(product.fields, [f])})

# The shipped contracts with a change merged in, to test the general rules
# against contracts that break them.
patch(change) := object.union(sluice.contracts, change)

field_names(product) := {f.name | some f in product.fields}

keep := {"op": "keep"}

# ---------------------------------------------------------------------------
# mvno-a: cdr for billing, fraud-alerts for fraud prevention, network quality.
# ---------------------------------------------------------------------------

test_mvno_a_cdr_billing_allowed_identifiers_in_clear if {
	d := sluice.decision with input as req(mvno_a, cdr, "billing")
	d.allow
	startswith(d.reason, "allowed: mvno contract: ")
	d.fields.imsi == keep
	d.fields.msisdn == keep
	d.fields.charge == keep
	d.fields.imei.op == "drop"
	d.fields.cell_id.op == "drop"
	not d.consent_required
}

test_mvno_a_cdr_billing_own_rows_only if {
	r := req(mvno_a, cdr, "billing")
	sluice.row with input as with_record(r, {"mvno_id": "mvno-a"})
	not sluice.row with input as with_record(r, {"mvno_id": "mvno-b"})
	not sluice.row with input as with_record(r, {})
}

test_mvno_a_fraud_alerts_allowed_in_clear_own_rows if {
	r := req(mvno_a, fraud_alerts, "fraud-prevention")
	d := sluice.decision with input as r
	d.allow
	object.keys(d.fields) == field_names(fraud_alerts)
	every _, t in d.fields {
		t == keep
	}
	not d.consent_required
	sluice.row with input as with_record(r, {"mvno_id": "mvno-a"})
	not sluice.row with input as with_record(r, {"mvno_id": "mvno-c"})
}

test_mvno_a_network_quality_all_cells_no_slice if {
	r := req(mvno_a, network_quality, "network-analytics")
	d := sluice.decision with input as r
	d.allow
	d.fields.cell_id == keep
	not d.fields.slice_id
	not d.consent_required # no personal data in the product
	sluice.row with input as with_record(r, {"cell_id": "262-01-2B000B003"})
}

test_mvno_cdr_fraud_prevention_denied if {
	d := sluice.decision with input as req(mvno_a, cdr, "fraud-prevention")
	not d.allow
	d.reason == `no mvno contract shares product "cdr" for purpose "fraud-prevention"`
	d.fields == {}
}

# ---------------------------------------------------------------------------
# mvno-b: cdr for network analytics, pseudonymised.
# ---------------------------------------------------------------------------

test_mvno_b_cdr_analytics_treatments if {
	d := sluice.decision with input as req(mvno_b, cdr, "network-analytics")
	d.allow
	d.fields.msisdn == {"op": "pseudonymise-format", "format": "msisdn", "keep_digits": 2}
	d.fields.imsi.op == "drop"
	d.fields.imei == {"op": "keep-prefix", "n": 8}
	d.fields.cell_id == {"op": "keep-prefix", "n": 12}
	d.fields.start_time == {"op": "generalise-time", "unit": "minute"}
	d.fields.record_id.op == "pseudonymise"
	d.fields.mvno_id == keep
	not d.fields.charge
	not d.fields.currency
	d.consent_required
}

test_mvno_b_cdr_analytics_own_rows_only if {
	r := req(mvno_b, cdr, "network-analytics")
	sluice.row with input as with_record(r, {"mvno_id": "mvno-b"})
	not sluice.row with input as with_record(r, {"mvno_id": "mvno-a"})
}

test_cell_site_prefix_keeps_the_site if {
	# 262-01-1A00301: eNodeB 1A003, cell 01. 262-01-2B000B003: gNodeB
	# 2B000B, cell 003.
	substring("262-01-1A00301", 0, sluice.cell_site.n) == "262-01-1A003"
	substring("262-01-1A00303", 0, sluice.cell_site.n) == "262-01-1A003"
	substring("262-01-2B000B003", 0, sluice.cell_site.n) == "262-01-2B000"
}

test_mvno_without_mvno_id_denied if {
	p := object.remove(mvno_b, ["attributes"])
	d := sluice.decision with input as req(p, cdr, "network-analytics")
	not d.allow
	d.reason == `partner "mvno-b" has no valid "mvno_id" attribute, which its row filter needs`
}

# ---------------------------------------------------------------------------
# iot-fleet: its own devices, coarsened; network quality.
# ---------------------------------------------------------------------------

test_iot_fleet_telemetry_treatments if {
	d := sluice.decision with input as req(iot_fleet, device_telemetry, "network-analytics")
	d.allow
	d.fields.lat == {"op": "generalise-location", "meters": 1000, "axis": "lat", "pair": "lon"}
	d.fields.lon == {"op": "generalise-location", "meters": 1000, "axis": "lon", "pair": "lat"}
	d.fields.imei == {"op": "pseudonymise-format", "format": "imei", "keep_digits": 8}
	d.fields.iccid == {"op": "pseudonymise-format", "format": "iccid", "keep_digits": 6}
	d.fields.device_id.op == "pseudonymise"
	d.fields.cell_id == sluice.cell_site
	d.fields.platform == keep
	not d.consent_required # the contract says so: the platform owns the SIMs
}

test_iot_fleet_telemetry_own_devices_only if {
	r := req(iot_fleet, device_telemetry, "network-analytics")
	sluice.row with input as with_record(r, {"platform": "iot-fleet"})
	not sluice.row with input as with_record(r, {"platform": "iot-meter"})
}

test_iot_network_quality_allowed if {
	r := req(iot_fleet, network_quality, "network-analytics")
	d := sluice.decision with input as r
	d.allow
	sluice.row with input as with_record(r, {"cell_id": "262-01-1A00701"})
}

test_iot_cdr_denied if {
	d := sluice.decision with input as req(iot_fleet, cdr, "network-analytics")
	not d.allow
}

# ---------------------------------------------------------------------------
# enterprise-x: network quality of its own cells, no personal data.
# ---------------------------------------------------------------------------

test_enterprise_x_network_quality_own_cells if {
	r := req(enterprise_x, network_quality, "network-analytics")
	d := sluice.decision with input as r
	d.allow
	d.fields.slice_id == keep # its own slice
	sluice.row with input as with_record(r, {"cell_id": "262-01-2B0000003"})
	sluice.row with input as with_record(r, {"cell_id": "262-01-2B0006001"})
	not sluice.row with input as with_record(r, {"cell_id": "262-01-2B0006003"})
	not sluice.row with input as with_record(r, {"cell_id": "262-01-1A00001"})
}

test_enterprise_never_gets_personal_data if {
	# Should the product ever carry personal fields, they are not shared.
	p := plus_field(plus_field(network_quality, {"name": "msisdn", "classification": "direct-identifier", "type": "string"}), {"name": "ue_lat", "classification": "quasi-identifier", "type": "double"})
	sets := object.union(sluice.field_sets, {"network-quality-own-cells": {"msisdn": keep, "ue_lat": keep}})
	d := sluice.decision with input as req(enterprise_x, p, "network-analytics")
		with sluice.field_sets as sets
	d.allow
	d.fields.cell_id == keep
	not d.fields.msisdn
	not d.fields.ue_lat
}

test_enterprise_without_cells_denied if {
	p := object.union(enterprise_x, {"attributes": {"cells": "262-01-2B0000001"}})
	d := sluice.decision with input as req(p, network_quality, "network-analytics")
	not d.allow
	contains(d.reason, `"cells" attribute`)
}

test_enterprise_cdr_denied if {
	d := sluice.decision with input as req(enterprise_x, cdr, "billing")
	not d.allow
}

# ---------------------------------------------------------------------------
# internal-noc: every product for network analytics.
# ---------------------------------------------------------------------------

test_internal_noc_cdr_pseudonymised if {
	r := req(internal_noc, cdr, "network-analytics")
	d := sluice.decision with input as r
	d.allow
	d.fields.msisdn == {"op": "pseudonymise"}
	d.fields.imsi == {"op": "pseudonymise"}
	d.fields.cell_id == keep # quasi-identifiers kept
	d.fields.start_time == keep
	not d.fields.charge # sensitive: dropped
	d.consent_required
	sluice.row with input as with_record(r, {"mvno_id": "mvno-e"})
}

test_internal_noc_every_product if {
	every p in [cdr, fraud_alerts, network_quality, device_telemetry] {
		d := sluice.decision with input as req(internal_noc, p, "network-analytics")
		d.allow
	}
}

test_internal_noc_drops_identifiers_it_cannot_pseudonymise if {
	d := sluice.decision with input as req(internal_noc, fraud_alerts, "network-analytics")
	d.fields.msisdn.op == "pseudonymise"
	not d.fields.related_numbers # an array of numbers
	not d.fields.evidence # sensitive
}

test_internal_noc_fraud_prevention_denied if {
	d := sluice.decision with input as req(internal_noc, device_telemetry, "fraud-prevention")
	not d.allow
}

# ---------------------------------------------------------------------------
# internal-fraud: fraud alerts and charging records, in clear.
# ---------------------------------------------------------------------------

test_internal_fraud_in_clear if {
	every p in [cdr, fraud_alerts] {
		r := req(internal_fraud, p, "fraud-prevention")
		d := sluice.decision with input as r
		d.allow
		object.keys(d.fields) == field_names(p)
		every _, t in d.fields {
			t == keep
		}
		not d.consent_required
		sluice.row with input as with_record(r, {"mvno_id": "mvno-a"})
	}
}

# ---------------------------------------------------------------------------
# Regulator and general denials.
# ---------------------------------------------------------------------------

test_regulator_denied if {
	every p in [cdr, fraud_alerts, network_quality, device_telemetry] {
		every purpose in sluice.purposes {
			d := sluice.decision with input as req(regulator, p, purpose)
			not d.allow
			d.reason == "regulators receive the audit stream, not data products"
			d.fields == {}
		}
	}
}

test_unknown_partner_type_denied if {
	p := object.union(mvno_a, {"type": "reseller"})
	d := sluice.decision with input as req(p, cdr, "billing")
	not d.allow
	d.reason == `unknown partner type "reseller"`
}

test_missing_partner_type_denied if {
	d := sluice.decision with input as req(object.remove(mvno_a, ["type"]), cdr, "billing")
	not d.allow
	d.reason == `unknown partner type ""`
}

test_unknown_purpose_denied if {
	d := sluice.decision with input as req(mvno_a, cdr, "curiosity")
	not d.allow
	d.reason == `unknown purpose "curiosity"`
}

test_grant_for_other_product_denied if {
	r := object.union(req(mvno_a, cdr, "billing"), {"grant": {"product": "fraud-alerts"}})
	d := sluice.decision with input as r
	not d.allow
	d.reason == `the grant is for product "fraud-alerts", not "cdr"`
}

test_empty_input_denied if {
	d := sluice.decision with input as {}
	not d.allow
	d.reason != ""
}

test_marketing_denied_for_everyone if {
	every p in [mvno_a, mvno_b, iot_fleet, enterprise_x, internal_noc] {
		d := sluice.decision with input as req(p, cdr, "marketing")
		not d.allow
	}
}

# ---------------------------------------------------------------------------
# General rules.
# ---------------------------------------------------------------------------

test_identifiers_in_clear_only_for_billing_and_fraud if {
	# A contract that would keep the MSISDN for analytics is refused.
	sets := object.union(sluice.field_sets, {"mvno-cdr-analytics": {"msisdn": keep}})
	d := sluice.decision with input as req(mvno_b, cdr, "network-analytics")
		with sluice.field_sets as sets
	not d.allow
	d.reason == `direct identifier "msisdn" would be shared in clear for purpose "network-analytics"; only billing and fraud-prevention may`
}

test_marketing_requires_consent if {
	c := {"summary": "test", "rows": "all", "classes": "pseudonymised-analytics"}
	d := sluice.decision with input as req(internal_noc, cdr, "marketing")
		with sluice.contracts as patch({"internal": {"cdr": {"marketing": c}}})
	d.allow
	d.consent_required
}

test_consent_follows_purpose if {
	sluice.consent_required with input as req(internal_noc, cdr, "network-analytics")
	not sluice.consent_required with input as req(internal_fraud, cdr, "fraud-prevention")
	not sluice.consent_required with input as req(mvno_a, cdr, "billing")
}

# ---------------------------------------------------------------------------
# Unknown fields are not mentioned, so the gateway drops them.
# ---------------------------------------------------------------------------

new_public := {"name": "new_field", "classification": "public", "type": "string"}

unclassified := {"name": "mystery", "classification": "", "type": "string"}

test_unknown_fields_not_mentioned if {
	every r in [
		req(mvno_a, plus_field(cdr, new_public), "billing"),
		req(mvno_b, plus_field(cdr, new_public), "network-analytics"),
		req(mvno_a, plus_field(fraud_alerts, new_public), "fraud-prevention"),
		req(iot_fleet, plus_field(device_telemetry, new_public), "network-analytics"),
		req(enterprise_x, plus_field(network_quality, new_public), "network-analytics"),
		req(mvno_a, plus_field(network_quality, new_public), "network-analytics"),
	] {
		d := sluice.decision with input as r
		d.allow
		not d.fields.new_field
	}
}

test_unclassified_fields_not_mentioned if {
	every r in [
		req(internal_noc, plus_field(cdr, unclassified), "network-analytics"),
		req(internal_fraud, plus_field(cdr, unclassified), "fraud-prevention"),
	] {
		d := sluice.decision with input as r
		d.allow
		not d.fields.mystery
	}
}

test_contract_naming_an_unknown_field_set_denied if {
	d := sluice.decision with input as req(mvno_a, cdr, "billing")
		with sluice.contracts as patch({"mvno": {"cdr": {"billing": {"fields": "typo"}}}})
	not d.allow
	d.reason == `the mvno contract for product "cdr" and purpose "billing" names no known field set or class set`
}

test_contract_naming_an_unknown_row_filter_denied if {
	d := sluice.decision with input as req(mvno_a, cdr, "billing")
		with sluice.contracts as patch({"mvno": {"cdr": {"billing": {"rows": "own-mvn0"}}}})
	not d.allow
	d.reason == `the mvno contract for product "cdr" and purpose "billing" names no known row filter`
}

test_contract_naming_both_sets_denied if {
	d := sluice.decision with input as req(mvno_a, cdr, "billing")
		with sluice.contracts as patch({"mvno": {"cdr": {"billing": {"classes": "everything-in-clear"}}}})
	not d.allow
}

test_contract_fields_missing_from_product_not_mentioned if {
	small := {"id": "cdr", "fields": [{"name": "msisdn", "classification": "direct-identifier", "type": "string"}]}
	d := sluice.decision with input as req(mvno_a, small, "billing")
	d.fields == {"msisdn": keep}
}
