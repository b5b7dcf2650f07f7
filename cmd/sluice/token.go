package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/products"
)

// maxTokenTTL bounds a development token's lifetime.
const maxTokenTTL = 30 * 24 * time.Hour

// tokenCmd implements `sluice token`: it prints a development bearer token
// for a partner of the built-in registry, signed with the data directory's
// dev signing key (created on first use), which the embedded mode trusts.
// stdout gets only the token and a newline, for scripts:
//
//	TOKEN=$(sluice token --partner mvno-a)
//	curl -H "Authorization: Bearer $TOKEN" ...
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("token", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), `usage: sluice token --partner ID [--data-dir DIR] [--ttl 1h]

Prints a development bearer token for a partner of the built-in registry,
signed with the dev key in DIR/auth/dev-signing-key.pem (created on first
use). Only a gateway in embedded mode with the same data directory trusts it.

`)
		flags.PrintDefaults()
	}
	dataDir := flags.String("data-dir", "./sluice-data", "data directory holding the dev signing key")
	partner := flags.String("partner", "", "partner id the token speaks for (required), e.g. mvno-a")
	ttl := flags.Duration("ttl", time.Hour, "token lifetime, at most 720h")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", flags.Arg(0))
	}
	reg, err := products.LoadDefaultPartners()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	ids := strings.Join(reg.IDs(), ", ")
	if *partner == "" {
		return fmt.Errorf("token: --partner is required; registered partners: %s", ids)
	}
	if _, ok := reg.Get(*partner); !ok {
		return fmt.Errorf("token: unknown partner %q; registered partners: %s", *partner, ids)
	}
	if *ttl <= 0 || *ttl > maxTokenTTL {
		return fmt.Errorf("token: --ttl %s out of range (want more than 0, at most %s)", *ttl, maxTokenTTL)
	}
	key, kid, err := auth.DevKey(*dataDir)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, *partner, *ttl)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
