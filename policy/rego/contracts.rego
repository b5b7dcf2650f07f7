# The contracts: for each partner type, which products it may read, for
# which purposes, which records, and how each field is treated.
#
# A request needs an entry in `contracts` for the partner's type, the
# product ("*" stands for every product) and the grant's purpose; without
# one it is denied. An entry says:
#
#   summary  one line for the partner, the portal and the audit trail;
#   rows     all           every record of the product
#            own-mvno      records whose mvno_id is the partner's mvno_id
#            own-platform  records whose platform is the partner's platform
#            own-cells     records whose cell_id is one of the partner's cells
#   fields   the name of a field set below: a treatment per field name, or
#   classes  the name of a class set below: a treatment per classification;
#            a field not named (or of a class not listed) is dropped;
#   consent  optional: true or false overrides the default (consent needed
#            for marketing and network analytics of personal data).
#
# Regulators have no entry: they read the audit stream, not data products.
#
# (The table names its field sets instead of spelling them out so that it
# stays small: the gateway evaluates the row filter against it with the
# record unknown, and that costs time in proportion to its size.)
package sluice

contracts := {
	# MVNOs: brands reselling the network. They see their own subscribers
	# only; identifiers in clear for billing and fraud prevention only.
	"mvno": {
		"cdr": {
			"billing": {
				"summary": "charging records of its own subscribers for billing, subscriber identifiers in clear",
				"rows": "own-mvno",
				"fields": "mvno-cdr-billing",
			},
			"network-analytics": {
				"summary": "usage records of its own subscribers for network analytics: subscriber pseudonymised, device reduced to its model, cell to its site, time to the minute",
				"rows": "own-mvno",
				"fields": "mvno-cdr-analytics",
			},
		},
		"fraud-alerts": {"fraud-prevention": {
			"summary": "fraud alerts about its own subscribers, identifiers in clear",
			"rows": "own-mvno",
			"fields": "fraud-alerts-all",
		}},
		"network-quality": {"network-analytics": {
			"summary": "radio KPIs of every cell (no personal data)",
			"rows": "all",
			"fields": "network-quality-shared",
		}},
	},
	# IoT platforms: their own devices, location coarsened to 1 km.
	"iot": {
		"device-telemetry": {"network-analytics": {
			"summary": "telemetry of its own devices: device identifiers pseudonymised, position to 1 km, cell to its site",
			"rows": "own-platform",
			"fields": "iot-telemetry",
			# The platform is the subscriber of its devices' SIMs: there is
			# no per-person consent to check.
			"consent": false,
		}},
		"network-quality": {"network-analytics": {
			"summary": "radio KPIs of every cell (no personal data)",
			"rows": "all",
			"fields": "network-quality-shared",
		}},
	},
	# Enterprise customers: KPIs of the cells they pay for, never personal
	# data (sluice.rego withholds every field that is not public).
	"enterprise": {"network-quality": {"network-analytics": {
		"summary": "radio KPIs of its own cells",
		"rows": "own-cells",
		"fields": "network-quality-own-cells",
	}}},
	# Internal divisions: the purpose decides.
	"internal": {
		# Network operations: every product.
		"*": {"network-analytics": {
			"summary": "every product for network analytics: direct identifiers pseudonymised, sensitive data dropped",
			"rows": "all",
			"classes": "pseudonymised-analytics",
		}},
		# The fraud team: alerts and charging records.
		"fraud-alerts": {"fraud-prevention": {
			"summary": "every record in clear for fraud prevention",
			"rows": "all",
			"classes": "everything-in-clear",
		}},
		"cdr": {"fraud-prevention": {
			"summary": "every record in clear for fraud prevention",
			"rows": "all",
			"classes": "everything-in-clear",
		}},
	},
}

# ---------------------------------------------------------------------------
# Field sets: a treatment per field name (treatments.rego defines them).
# ---------------------------------------------------------------------------

# MVNO billing: who used what, when, where roaming, for how much. Billing
# needs neither the handset (imei) nor the serving cell (location).
field_sets["mvno-cdr-billing"] := {
	"record_id": keep,
	"imsi": keep,
	"msisdn": keep,
	"mvno_id": keep,
	"service": keep,
	"start_time": keep,
	"duration_s": keep,
	"bytes_up": keep,
	"bytes_down": keep,
	"roaming": keep,
	"visited_mcc": keep,
	"charge": keep,
	"currency": keep,
	"imei": drop,
	"cell_id": drop,
}

# MVNO network analytics: usage patterns without identities.
field_sets["mvno-cdr-analytics"] := {
	# Pseudonymised, not kept: a partner holding both this feed and the
	# billing feed must not link them by record id.
	"record_id": pseudonym,
	"msisdn": msisdn_pseudonym,
	"imsi": drop,
	"imei": imei_tac,
	"mvno_id": keep,
	"service": keep,
	"start_time": to_minute,
	"duration_s": keep,
	"bytes_up": keep,
	"bytes_down": keep,
	"cell_id": cell_site,
	"roaming": keep,
	"visited_mcc": keep,
	# charge and currency: not needed for analytics, so not named: dropped.
}

# Fraud prevention: the whole alert, in clear.
field_sets["fraud-alerts-all"] := {name: keep | some name in fraud_alert_fields}

# IoT platforms: device health in full, identity and position coarsened.
field_sets["iot-telemetry"] := {
	"device_id": pseudonym,
	"imei": imei_pseudonym,
	"iccid": iccid_pseudonym,
	"platform": keep,
	"device_type": keep,
	"firmware": keep,
	"battery_pct": keep,
	"rsrp_dbm": keep,
	"sinr_db": keep,
	"cell_id": cell_site,
	"lat": lat_1km,
	"lon": lon_1km,
	"temperature_c": keep,
	"error_codes": keep,
	"event_time": keep,
}

# Network quality for partners other than the enterprise itself: every KPI,
# but not which cells carry an enterprise's private slice.
field_sets["network-quality-shared"] := {name: keep | some name in network_quality_fields; name != "slice_id"}

# Network quality for an enterprise: every KPI of its own cells and slice.
field_sets["network-quality-own-cells"] := {name: keep | some name in network_quality_fields}

fraud_alert_fields := [
	"alert_id", "type", "score", "imsi", "msisdn", "imei", "mvno_id",
	"detected_at", "status", "rule", "evidence", "related_numbers",
]

network_quality_fields := [
	"cell_id", "site_id", "region", "technology", "interval_start", "interval_s",
	"rsrp_avg_dbm", "rsrq_avg_db", "sinr_avg_db", "latency_p50_ms", "latency_p95_ms",
	"dl_throughput_mbps", "ul_throughput_mbps", "prb_utilisation_pct", "drop_rate_pct",
	"availability_pct", "active_users", "site_lat", "site_lon", "slice_id",
]

# ---------------------------------------------------------------------------
# Class sets: a treatment per catalog classification.
# ---------------------------------------------------------------------------

# Analytics on any product: identities pseudonymised, quasi-identifiers
# (location, time) kept, sensitive data (charges, fraud suspicions) dropped.
class_sets["pseudonymised-analytics"] := {
	"direct-identifier": pseudonym,
	"quasi-identifier": keep,
	"public": keep,
}

# Everything as it is.
class_sets["everything-in-clear"] := {
	"direct-identifier": keep,
	"quasi-identifier": keep,
	"sensitive": keep,
	"public": keep,
}
