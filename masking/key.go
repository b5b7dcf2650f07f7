package masking

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
)

// Key sizes.
const (
	// MinSecretLen is the shortest server secret DeriveKey accepts.
	MinSecretLen = 32
	// KeyLen is the length of a key DeriveKey returns, and the shortest key
	// Compile accepts for a keyed op.
	KeyLen = 32
)

// Labels of the key schedule. Changing one changes every pseudonym: they are
// part of the output format, versioned by the "v1".
const (
	deriveSalt        = "sluice/masking/v1"
	deriveInfo        = "sluice/masking/v1/partner-key"
	pseudonymiseLabel = "sluice/masking/v1/pseudonymise/hmac-sha256"
	ff1Label          = "sluice/masking/v1/pseudonymise-format/ff1-aes256"
)

// DeriveKey derives the pseudonymisation key of one recipient from the
// server secret:
//
//	HKDF-SHA256(ikm = serverSecret, salt = "sluice/masking/v1",
//	            info = "sluice/masking/v1/partner-key" || u32(len p) || p || u32(len q) || q,
//	            length = 32)
//
// where p is partnerID and q is purpose, lengths big-endian. It is a pure
// function of its inputs, so every replica and every restart derives the same
// key, and different partners get unrelated keys.
//
// Pass purpose "" (recommended) for one key per partner: a partner can then
// join its own records across all its purposes, and no two partners can join
// theirs. Pass a purpose when a contract forbids linking across purposes; the
// partner then gets unrelated pseudonyms per purpose. Rotating serverSecret
// changes every pseudonym.
//
// The secret must be at least MinSecretLen bytes; partnerID must not be empty.
// Errors wrap ErrKey and never contain key material.
func DeriveKey(serverSecret []byte, partnerID, purpose string) ([]byte, error) {
	if len(serverSecret) < MinSecretLen {
		return nil, fmt.Errorf("masking: server secret is %d bytes, must be >= %d; generate one with `openssl rand -hex 32`: %w",
			len(serverSecret), MinSecretLen, ErrKey)
	}
	if partnerID == "" {
		return nil, fmt.Errorf("masking: derive key: empty partner id: %w", ErrKey)
	}
	info := make([]byte, 0, len(deriveInfo)+8+len(partnerID)+len(purpose))
	info = append(info, deriveInfo...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(partnerID)))
	info = append(info, partnerID...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(purpose)))
	info = append(info, purpose...)
	key, err := hkdf.Key(sha256.New, serverSecret, []byte(deriveSalt), string(info), KeyLen)
	if err != nil {
		return nil, fmt.Errorf("masking: derive key: %v: %w", err, ErrKey)
	}
	return key, nil
}

// secrets is the key material of one compiled keyed transform: sub-keys
// expanded from the partner key, one per algorithm, so the HMAC and the
// block cipher never share a key. It is immutable after compile and safe for
// concurrent use. Its formatting methods never reveal it.
type secrets struct {
	// inner and outer are the SHA-256 states (encoding.BinaryMarshaler
	// form) after the HMAC-SHA256 inner and outer pads of the pseudonymise
	// sub-key: a pseudonym then costs two compressions instead of four.
	inner, outer []byte
	block        cipher.Block // AES-256 under the FF1 sub-key
}

const redactedKey = "[masking key redacted]"

func (secrets) String() string                { return redactedKey }
func (secrets) GoString() string              { return redactedKey }
func (secrets) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, redactedKey) }

// newSecrets expands the per-algorithm sub-keys from a partner key.
func newSecrets(op Op, key []byte) (*secrets, error) {
	if len(key) < KeyLen {
		if len(key) == 0 {
			return nil, fmt.Errorf("masking: op %q needs a key (see DeriveKey): %w", op, ErrKey)
		}
		return nil, fmt.Errorf("masking: op %q: key is %d bytes, must be >= %d (see DeriveKey): %w", op, len(key), KeyLen, ErrKey)
	}
	s := &secrets{}
	switch op {
	case OpPseudonymise:
		mk, err := hkdf.Expand(sha256.New, key, pseudonymiseLabel, sha256.Size)
		if err != nil {
			return nil, fmt.Errorf("masking: op %q: expand key: %v: %w", op, err, ErrKey)
		}
		var ipad, opad [sha256.BlockSize]byte
		for i := range ipad {
			ipad[i], opad[i] = 0x36, 0x5c
		}
		for i, b := range mk { // a 32-byte key fits one block: no pre-hash
			ipad[i] ^= b
			opad[i] ^= b
		}
		clear(mk)
		if s.inner, err = padState(ipad[:]); err == nil {
			s.outer, err = padState(opad[:])
		}
		clear(ipad[:])
		clear(opad[:])
		if err != nil {
			return nil, fmt.Errorf("masking: op %q: %v: %w", op, err, ErrKey)
		}
	case OpPseudonymiseFormat:
		ek, err := hkdf.Expand(sha256.New, key, ff1Label, 32)
		if err != nil {
			return nil, fmt.Errorf("masking: op %q: expand key: %v: %w", op, err, ErrKey)
		}
		s.block, err = aes.NewCipher(ek)
		clear(ek)
		if err != nil {
			return nil, fmt.Errorf("masking: op %q: %v: %w", op, err, ErrKey)
		}
	}
	return s, nil
}

// pseudonymEncoding is RFC 4648 base32 with the lower-case alphabet and no
// padding: URL-, file- and SQL-safe, case-insensitive, 26 characters for the
// 16 MAC bytes kept.
var pseudonymEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// pseudonymMACBytes is how much of the HMAC-SHA256 output a pseudonym keeps:
// 128 bits, so a collision needs about 2^64 distinct inputs.
const pseudonymMACBytes = 16

// padState is the SHA-256 state after one block (a pad), marshalled.
func padState(pad []byte) ([]byte, error) {
	h := sha256.New()
	h.Write(pad)
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}

// appendPseudonym treats dst[l:] as the message and replaces it with
// prefix || base32(HMAC-SHA256(subkey, message)[:16]).
//
// The two SHA-256 digests resume from the pads' states; the compiler
// devirtualizes them and keeps them on the stack, so a call allocates
// nothing and is safe for concurrent use.
func (s *secrets) appendPseudonym(dst []byte, l int, prefix []byte) []byte {
	var sum [sha256.Size]byte
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.inner); err != nil {
		panic("masking: bad HMAC state: " + err.Error()) // made by padState: cannot happen
	}
	h.Write(dst[l:])
	inner := h.Sum(sum[:0])
	o := sha256.New()
	if err := o.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.outer); err != nil {
		panic("masking: bad HMAC state: " + err.Error())
	}
	o.Write(inner)
	mac := o.Sum(sum[:0])
	dst = append(dst[:l], prefix...)
	return pseudonymEncoding.AppendEncode(dst, mac[:pseudonymMACBytes])
}
