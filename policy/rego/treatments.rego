# Field treatments the contracts use, by name. Each is what package masking
# applies to one field: {"op": ..., parameters}. A field no contract names is
# dropped; "drop" exists only to make an intentional omission visible.
package sluice

# Shared as it is.
keep := {"op": "keep"}

# Not shared.
drop := {"op": "drop"}

# A keyed pseudonym per partner: the partner can follow the same value over
# time but cannot recover it or join it with another partner's pseudonyms.
pseudonym := {"op": "pseudonymise"}

# A phone number that still looks like one: the country code (2 digits for
# Germany, 49) stays, the rest is a keyed format-preserving pseudonym.
msisdn_pseudonym := {"op": "pseudonymise-format", "format": "msisdn", "keep_digits": 2}

# An IMEI that still looks like one: the TAC (first 8 digits, the device
# model) stays, serial and check digit are a keyed pseudonym.
imei_pseudonym := {"op": "pseudonymise-format", "format": "imei", "keep_digits": 8}

# A SIM serial that still looks like one: "89" (telecom), country code and
# issuer (6 digits) stay, the rest is a keyed pseudonym.
iccid_pseudonym := {"op": "pseudonymise-format", "format": "iccid", "keep_digits": 6}

# Only the TAC of an IMEI: the device model, not the device.
imei_tac := {"op": "keep-prefix", "n": 8}

# Only the site of a cell. Cell ids are "MCC-MNC-cell identity" with the
# identity in hex (262-01-1A00301): an LTE ECI is the 20-bit eNodeB id (5
# hex digits) followed by the 8-bit cell id (2 hex digits); an NR NCI is
# the gNodeB id followed by the cell's bits (the synthetic network uses a
# 24-bit gNodeB id and 12 cell bits: 6 + 3 hex digits). Keeping 12
# characters ("262-01-" and 5 hex digits) keeps exactly the eNodeB of an
# LTE cell and drops every per-cell digit of both technologies; for NR it
# also drops the last hex digit of the gNodeB id, so up to 16 neighbouring
# NR sites share one value. Coarser for 5G than needed, never finer.
cell_site := {"op": "keep-prefix", "n": 12}

# Time of use to the minute: enough for traffic analysis, blurs the exact
# moment of a call.
to_minute := {"op": "generalise-time", "unit": "minute"}

# Position coarsened to a grid of 1 km: the gateway pairs lat and lon.
lat_1km := {"op": "generalise-location", "meters": 1000, "axis": "lat", "pair": "lon"}

lon_1km := {"op": "generalise-location", "meters": 1000, "axis": "lon", "pair": "lat"}
