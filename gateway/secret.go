package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// pseudonymSecret returns the server secret that per-partner pseudonym keys
// are derived from (masking.DeriveKey). It must be the same on every replica
// and across restarts, or partners' pseudonyms change: set
// SLUICE_PSEUDONYM_SECRET (64+ hex digits) or pseudonym_secret_file, or let
// sluice create <data-dir>/auth/pseudonym-secret once (single node). The
// secret is never logged.
func pseudonymSecret(cfg Config) ([]byte, error) {
	if v := os.Getenv("SLUICE_PSEUDONYM_SECRET"); v != "" {
		return decodeSecret(strings.TrimSpace(v), "SLUICE_PSEUDONYM_SECRET")
	}
	path := cfg.PseudonymSecretFile
	create := false
	if path == "" {
		path = filepath.Join(cfg.DataDir, "auth", "pseudonym-secret")
		create = true
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("pseudonym secret: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("pseudonym secret: %w", err)
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("pseudonym secret: %w", err)
		}
		return secret, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pseudonym secret: %w", err)
	}
	return decodeSecret(strings.TrimSpace(string(b)), path)
}

func decodeSecret(s, from string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < 32 {
		return nil, fmt.Errorf("pseudonym secret from %s: want at least 64 hex digits (32 bytes)", from)
	}
	return b, nil
}
