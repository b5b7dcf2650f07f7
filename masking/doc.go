// Package masking owns the field transforms sluice applies to each record
// before it leaves the gateway: keep, drop, redact, pseudonymise,
// pseudonymise-format, keep-prefix, keep-suffix, generalise-location,
// generalise-time and bucket.
//
// It does not decide which transform a field gets (package policy does), nor
// read Avro or write JSON (the gateway's views do). It is a leaf: it imports
// only the standard library, and the gateway translates a policy decision
// into its Specs.
//
// # Lifecycle
//
// A policy output such as {"op": "keep-prefix", "n": 8} becomes a Spec with
// ParseSpec (strict: an unknown op or key is an error naming it). Compile
// turns a Spec and the recipient's key into a *Transform once per (partner,
// product, purpose, policy revision). The Transform is immutable and safe for
// concurrent use; its per-value methods take raw values (strings and bytes as
// []byte, ints and epoch-millis timestamps as int64, doubles as float64) and
// return raw values, appending strings into caller-owned buffers without
// allocating. The caller quotes and escapes strings.
//
//	spec, err := masking.ParseSpec(decision)        // per subscription
//	key, err := masking.DeriveKey(secret, partnerID, "")
//	t, err := masking.Compile(spec, key)
//	kind, err := t.OutputKind(masking.KindString)   // for the view's schema
//	buf = t.AppendString(buf[:0], msisdn)           // per record, 0 allocs
//
// OutputKind tells the gateway what each field becomes (a pseudonymised long
// is a string, a null-redacted field null, a dropped field none) and which
// method to call; see Transform. Misusing a method fails closed: it returns
// nothing, 0 or NaN, never the input in clear.
//
// # Ops
//
//	op                   parameters            string in   int in      float in
//	keep                 -                     string      int         float
//	drop                 -                     omitted     omitted     omitted
//	redact               replacement           null or the replacement string, any input
//	pseudonymise         prefix                string      string      -
//	pseudonymise-format  format, keep_digits   string      string      -
//	keep-prefix          n, fill               string      string      -
//	keep-suffix          n, fill               string      string      -
//	generalise-location  meters, axis, pair    -           -           float (pair)
//	generalise-time      unit                  -           int         -
//	bucket               width or bounds       -           int         float
//
// keep-prefix and keep-suffix count characters (runes), keep the first or
// last n, and either drop the rest or, with fill, replace each dropped
// character by fill: an IMEI with n=8 gives its TAC "49015420", or with
// fill="*" "49015420*******". Ints are transformed as their decimal text.
//
// generalise-time floors epoch milliseconds to the second, minute, hour or
// (UTC) day. bucket floors a number to a multiple of width, or maps it to the
// largest of bounds at or below it (values below the first bound map to the
// first bound: put the domain minimum first); ints stay ints when width and
// bounds are integers. generalise-location snaps a lat/lon pair to the centre
// of a grid cell at least meters wide and tall, see GeneraliseLatLon; the
// gateway pairs the two fields (axis and pair name them) and calls LatLon.
//
// # Keys
//
// DeriveKey derives one 32-byte key per partner from the server secret with
// HKDF-SHA256 (a pure function: stable across restarts and replicas). By
// default purpose is not part of it: a partner can join its own records
// across its purposes, and no partner can join its pseudonyms with another
// partner's. A non-empty purpose gives a separate key per purpose where a
// contract forbids linking. Compile expands the partner key into one sub-key
// per algorithm (HKDF-Expand, labels in key.go). Key material never appears
// in errors, String, Describe, fmt verbs, slog or JSON output.
//
// # Pseudonyms
//
// pseudonymise outputs prefix + base32(HMAC-SHA256(k, value)[:16]): 26
// lower-case characters from a-z2-7 (URL-, file- and SQL-safe), 128 bits, so
// collisions need about 2^64 values. It is one-way even for the key holder
// (except by enumeration with the key). An int is pseudonymised as its
// decimal text, so the long and the string forms of an identifier agree.
//
// pseudonymise-format outputs a digit string of the same length and
// character class: digits stay digits, separators (space + - ( ) . /) stay in
// place. It is FF1 (NIST SP 800-38G Rev. 1) with AES-256, radix 10, checked
// against the NIST sample vectors. The first keep_digits digits stay in clear
// (country code, MCC+MNC, TAC) and are FF1's tweak, so numbers that share
// their tail but not their prefix get unrelated pseudonyms. Format imei (15
// digits) and iccid recompute a valid Luhn check digit over the enciphered
// body. Being a permutation, FF1 never maps two inputs of the same length and
// prefix to one pseudonym: zero collisions, where an HMAC-derived digit
// string with 8 free digits (an MSISDN keeping 5) would give about 0.5
// expected collisions among 10^4 subscribers, 50 among 10^5 and 5,000 among
// 10^6 (n^2 / 2*10^8). At least MinFreeDigits (6, the NIST minimum domain of 10^6)
// digits are always enciphered: a short value keeps fewer digits than asked,
// and a value with fewer than 6 digits (or a byte that is neither digit nor
// separator, or more than 36 digits to encipher) is masked to zeros instead.
// Whoever holds the server secret can invert FF1; a partner cannot.
//
// Why the key protects: the MSISDN space is small (a German mobile range of
// 10^8 numbers hashes in under a minute on one core), so an unkeyed hash of it
// is not a pseudonym: anyone can hash every candidate and look the result up.
// Both pseudonymise ops are keyed pseudorandom functions; without the
// partner's key an enumeration produces values unrelated to the real
// pseudonyms, and the key derives from a server secret that never leaves the
// gateway.
//
// # Buffers
//
// Append methods may use dst's spare capacity as scratch (up to
// len(value)+96 bytes past len(dst) for pseudonymise, len(value)+16 for
// pseudonymise-format) and clear it before they return; the value must not
// overlap that spare capacity. Reusing one buffer per
// goroutine (buf = t.AppendString(buf[:0], v)) keeps the per-record path free
// of allocations.
package masking
