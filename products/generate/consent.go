package generate

import (
	"encoding/json"
	"time"
)

// ConsentTopic is the compacted topic of subscriber consent the generator
// writes: key = the subscriber's MSISDN, value = a JSON [Consent]. A
// subscriber's latest record wins (compaction); an empty opt_outs list (or
// a tombstone) means consent is given for every purpose.
const ConsentTopic = "telco.consent"

// ConsentProduct is the Record.Product of consent records.
const ConsentProduct = "consent"

// Consent is the value of a consent record.
type Consent struct {
	Subscriber string    `json:"subscriber"`
	OptOuts    []string  `json:"opt_outs"` // purposes: marketing, network-analytics, ...
	UpdatedAt  time.Time `json:"updated_at"`
}

// consentPurposes are the purposes subscribers can opt out of.
var consentPurposes = []string{"marketing", "network-analytics"}

// NextConsent returns a consent change of a random subscriber: most opt out
// of one or both consent-based purposes, some give consent back.
func (g *Generator) NextConsent() Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.w.subs[g.r.IntN(len(g.w.subs))]
	return g.consentRecord(s.msisdn, g.randomOptOuts(), time.Now().UTC())
}

// ConsentFor returns a consent record for one subscriber (tests).
func ConsentFor(msisdn string, optOuts []string, at time.Time) Record {
	return (*Generator)(nil).consentRecord(msisdn, optOuts, at)
}

func (g *Generator) randomOptOuts() []string {
	switch g.r.IntN(4) {
	case 0:
		return []string{} // consent given back
	case 1:
		return []string{"marketing", "network-analytics"}
	default:
		return []string{consentPurposes[g.r.IntN(len(consentPurposes))]}
	}
}

func (*Generator) consentRecord(msisdn string, optOuts []string, at time.Time) Record {
	if optOuts == nil {
		optOuts = []string{}
	}
	v, _ := json.Marshal(Consent{Subscriber: msisdn, OptOuts: optOuts, UpdatedAt: at})
	return Record{Product: ConsentProduct, Topic: ConsentTopic, Key: []byte(msisdn), Value: v, Time: at}
}
