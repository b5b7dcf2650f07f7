# sluice data-sharing policy: who may read which data product, for which
# purpose, which records, and what each field looks like when it leaves.
#
# The gateway asks two questions each time a partner opens a subscription
# (never per record):
#
#   data.sluice.decision  allowed or not and why, the treatment of every
#                         field, whether subscribers' consent is needed.
#   data.sluice.row       which records the partner sees. It is evaluated
#                         with the record still unknown; what remains are
#                         conditions on input.record (for example
#                         input.record.mvno_id == "mvno-b") that the gateway
#                         compiles into a filter.
#
# The input describes the partner, its grant and the product:
#
#   input.partner  {"id", "name", "type", "attributes": {...}}
#   input.grant    {"product", "purpose"}
#   input.product  {"id", "fields": [{"name", "classification", "type"}]}
#
# Three rules hold everywhere:
#   - deny by default: access needs a contract in contracts.rego for the
#     partner's type, the product and the purpose;
#   - a field the policy does not mention is dropped (data minimisation);
#   - direct identifiers are never shared in clear, except for billing and
#     fraud prevention.
package sluice

# Partner types sluice knows. Any other type is denied.
partner_types := {"mvno", "iot", "enterprise", "internal", "regulator"}

# Purposes a grant may state (GDPR art. 5, purpose limitation). Any other
# purpose is denied.
purposes := {"billing", "fraud-prevention", "network-analytics", "marketing", "regulatory"}

# The only purposes for which direct identifiers (IMSI, MSISDN, IMEI, ICCID,
# device ids) may leave in clear.
clear_identifier_purposes := {"billing", "fraud-prevention"}

# Purposes that rely on the subscriber's consent: subscribers who withdrew
# it are filtered out of the partner's stream.
consent_purposes := {"marketing", "network-analytics"}

# Classifications that make a product personal data.
personal_classes := {"direct-identifier", "quasi-identifier", "sensitive"}

# The answer the gateway reads. Denied decisions carry no fields.
decision := {
	"allow": allow,
	"reason": reason,
	"fields": fields,
	"consent_required": consent_required,
}

# Deny unless a contract covers the request and nothing below objects.
default allow := false

allow if {
	contract
	not deny_reason
}

default reason := "denied: no contract allows this request"

reason := deny_reason

reason := sprintf("allowed: %s contract: %s", [partner_type, contract.summary]) if allow

# The parts of the input the rules below test, "" when missing, so that a
# malformed input is denied with a reason rather than left undecided.
default partner_type := ""

partner_type := input.partner.type

default partner_id := ""

partner_id := input.partner.id

default purpose := ""

purpose := input.grant.purpose

default granted_product := ""

granted_product := input.grant.product

default product_id := ""

product_id := input.product.id

# Why a request is denied: the first reason that applies, in this order.
# Values from the input are quoted with json.marshal, which shows any value
# faithfully, strings in double quotes.
deny_reason := msg if {
	granted_product != product_id
	msg := sprintf("the grant is for product %s, not %s", [json.marshal(granted_product), json.marshal(product_id)])
} else := msg if {
	not partner_type in partner_types
	msg := sprintf("unknown partner type %s", [json.marshal(partner_type)])
} else := msg if {
	not purpose in purposes
	msg := sprintf("unknown purpose %s", [json.marshal(purpose)])
} else := "regulators receive the audit stream, not data products" if {
	partner_type == "regulator"
} else := msg if {
	not contract
	msg := sprintf("no %s contract shares product %s for purpose %s", [partner_type, json.marshal(product_id), json.marshal(purpose)])
} else := msg if {
	not row_attributes[contract.rows]
	msg := sprintf("the %s contract for product %s and purpose %s names no known row filter", [partner_type, json.marshal(product_id), json.marshal(purpose)])
} else := msg if {
	some attribute in row_attributes[contract.rows]
	not valid_attribute(attribute)
	msg := sprintf("partner %s has no valid %s attribute, which its row filter needs", [json.marshal(partner_id), json.marshal(attribute)])
} else := msg if {
	not treatments_defined
	msg := sprintf("the %s contract for product %s and purpose %s names no known field set or class set", [partner_type, json.marshal(product_id), json.marshal(purpose)])
} else := msg if {
	count(violations) > 0
	msg := concat("; ", violations)
}

# A contract names exactly one existing field set or class set.
treatments_defined if {
	field_set
	not contract.classes
}

treatments_defined if {
	class_set
	not contract.fields
}

# The contract that applies: the partner type's entry for this product and
# purpose, or its entry for every product ("*") and this purpose.
contract := c if {
	c := contracts[partner_type][product_id][purpose]
} else := c if {
	c := contracts[partner_type]["*"][purpose]
}

# Safety net over every contract: a treatment that would put a direct
# identifier in clear for any purpose other than billing or fraud prevention
# denies the request.
violations contains msg if {
	not purpose in clear_identifier_purposes
	some f in input.product.fields
	f.classification == "direct-identifier"
	proposed_fields[f.name].op == "keep"
	msg := sprintf("direct identifier %s would be shared in clear for purpose %s; only billing and fraud-prevention may", [json.marshal(f.name), json.marshal(purpose)])
}

# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------

# Which partner attribute each kind of row filter needs.
row_attributes := {
	"all": [],
	"own-mvno": ["mvno_id"],
	"own-platform": ["platform"],
	"own-cells": ["cells"],
}

valid_attribute("mvno_id") if non_empty_string(input.partner.attributes.mvno_id)

valid_attribute("platform") if non_empty_string(input.partner.attributes.platform)

valid_attribute("cells") if {
	is_array(input.partner.attributes.cells)
	count(input.partner.attributes.cells) > 0
	every c in input.partner.attributes.cells {
		non_empty_string(c)
	}
}

non_empty_string(s) if {
	is_string(s)
	s != ""
}

# Every record of the product.
row if contract.rows == "all"

# An MVNO sees the records of its own subscribers only.
row if {
	contract.rows == "own-mvno"
	input.record.mvno_id == input.partner.attributes.mvno_id
}

# An IoT platform sees its own devices only.
row if {
	contract.rows == "own-platform"
	input.record.platform == input.partner.attributes.platform
}

# An enterprise sees the cells it pays for only.
row if {
	contract.rows == "own-cells"
	input.record.cell_id in input.partner.attributes.cells
}

# ---------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------

# The fields of an allowed decision. Fields not listed here are dropped.
default fields := {}

fields := proposed_fields if allow

# The treatment of each field of the product under the contract, before the
# safety net: a contract names a field set (a treatment per field name) or
# a class set (a treatment per classification). Fields of a new schema
# version that the set does not name are left out, so they are dropped.
proposed_fields[f.name] := t if {
	some f in input.product.fields
	t := field_set[f.name]
	not withheld(f)
}

proposed_fields[f.name] := t if {
	some f in input.product.fields
	t := class_set[f.classification]
	fits(t, f)
	not withheld(f)
}

# The contract's field set or class set.
field_set := field_sets[contract.fields]

class_set := class_sets[contract.classes]

# Enterprise customers receive no personal data at all: only public fields.
withheld(f) if {
	partner_type == "enterprise"
	f.classification != "public"
}

# A treatment given per classification must suit the field's type: the
# pseudonyms and prefix treatments work on strings and integers only, any
# other field of that class is dropped.
text_ops := {"pseudonymise", "pseudonymise-format", "keep-prefix", "keep-suffix"}

fits(t, _) if not t.op in text_ops

fits(t, f) if {
	t.op in text_ops
	f.type in {"string", "int", "long"}
}

# ---------------------------------------------------------------------------
# Consent
# ---------------------------------------------------------------------------

# Consent is required for consent-based purposes when the product holds
# personal data, unless the contract says otherwise ("consent").
default consent_required := false

consent_required := contract.consent if consent_set_by_contract

consent_required if {
	not consent_set_by_contract
	purpose in consent_purposes
	some f in input.product.fields
	f.classification in personal_classes
}

consent_set_by_contract if is_boolean(contract.consent)
