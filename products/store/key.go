package store

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"strings"
)

// API key format: "slk_" + id + "_" + secret, where id is 16 lowercase
// base32 characters (80 random bits; public, the lookup key) and secret is
// 32 random bytes in unpadded base64url (43 characters, 256 bits).
//
// The store keeps SHA-256 of the whole presented key, never the key. A fast
// hash is enough: the secret has 256 bits of entropy, so the stored hash
// cannot be brute-forced or looked up in a dictionary; slow password hashes
// (bcrypt, argon2) exist for low-entropy human passwords and would only cost
// CPU on every request. The hash covers the id too, so a hash row cannot be
// moved to another key id.
const (
	keyPrefix    = "slk_"
	keyIDLen     = 16
	keySecretLen = 43 // base64url of 32 bytes, unpadded
	keyLen       = len(keyPrefix) + keyIDLen + 1 + keySecretLen
)

// idEncoding: lowercase base32 without padding, URL-safe, no "_" (so it can
// sit between the underscores of a key).
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix + 16 random base32 characters (80 bits).
func newID(prefix string) string {
	var b [10]byte
	rand.Read(b[:]) // never fails (crypto/rand panics if the OS fails it)
	return prefix + idEncoding.EncodeToString(b[:])
}

// newKey returns a fresh key id and the full key to hand to the partner.
func newKey() (id, presented string) {
	id = newID("")
	var secret [32]byte
	rand.Read(secret[:])
	return id, keyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
}

// parseKey checks the shape of a presented key and returns its id. It does
// not allocate, and reports nothing about the secret.
func parseKey(presented string) (id string, ok bool) {
	if len(presented) != keyLen || !strings.HasPrefix(presented, keyPrefix) {
		return "", false
	}
	id = presented[len(keyPrefix) : len(keyPrefix)+keyIDLen]
	if presented[len(keyPrefix)+keyIDLen] != '_' {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", false
		}
	}
	secret := presented[len(keyPrefix)+keyIDLen+1:]
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	// 43 base64 characters carry 258 bits: the last one must leave the two
	// spare bits zero, as the encoder writes them (canonical form, so one
	// secret has exactly one spelling).
	if strings.IndexByte(canonicalLast, secret[len(secret)-1]) < 0 {
		return "", false
	}
	return id, true
}

// canonicalLast are the base64url characters whose two low bits are zero.
const canonicalLast = "AEIMQUYcgkosw048"

// scramIterations is the PBKDF2 iteration count of new SCRAM credentials:
// 4096, the least Kafka's clients accept for SCRAM-SHA-512. The secret's
// 256 bits, not the iterations, are what keeps the credential from being
// brute-forced.
const scramIterations = 4096

// newScramCredential derives the SCRAM-SHA-512 credential of a key's
// secret (the password of a SCRAM login) with a fresh 32-byte salt.
func newScramCredential(secret string) (ScramCredential, error) {
	sc := ScramCredential{Salt: make([]byte, 32), Iterations: scramIterations}
	rand.Read(sc.Salt)
	salted, err := pbkdf2.Key(sha512.New, secret, sc.Salt, sc.Iterations, sha512.Size)
	if err != nil {
		return ScramCredential{}, fmt.Errorf("store: derive SCRAM credential: %v", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha512.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha512.Sum512(mac(salted, "Client Key"))
	sc.StoredKey, sc.ServerKey = stored[:], mac(salted, "Server Key")
	clear(salted)
	return sc, nil
}

// hashKey is what the store keeps of a key.
func hashKey(presented string) []byte {
	h := sha256.Sum256([]byte(presented))
	return h[:]
}
