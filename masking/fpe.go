package masking

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
	"slices"
)

// Format-preserving pseudonyms: FF1 (NIST SP 800-38G Rev. 1) over radix 10
// with AES-256, keyed by a sub-key of the partner key, tweaked by the digits
// kept in clear.
//
// FF1 is a keyed permutation of the n-digit strings, so two different inputs
// of the same length and kept prefix never share a pseudonym (zero
// collisions, unlike a hash-derived digit stream), and without the key the
// mapping can neither be computed nor inverted: enumerating all candidate
// inputs is useless without the key. Whoever holds the server secret can
// invert it (FF1 decryption); that is the "additional information kept
// separately" of GDPR art. 4(5), not something a partner has.

const (
	ff1Rounds    = 10
	maxFPEDigits = 64 // digits gathered from one value; more are masked
)

// fpeSeparator reports bytes that pseudonymise-format leaves in place
// between digits, as in "+49 151-1234 5678". Any other non-digit byte makes
// the value invalid, and it is masked.
func fpeSeparator(c byte) bool {
	switch c {
	case ' ', '+', '-', '(', ')', '.', '/':
		return true
	}
	return false
}

var pow10 = [...]uint64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// ff1Bytes[v] is FF1's b = ceil(ceil(v*log2(10))/8): the bytes NUM(B) takes
// for a v-digit half. ceil(v*log2(10)) is the bit length of 10^v-1.
var ff1Bytes = func() (t [MaxFreeDigits/2 + 1]int) {
	for v := 1; v < len(t); v++ {
		t[v] = (bits.Len64(pow10[v]-1) + 7) / 8
	}
	return t
}()

// fpeScratch is the spare capacity FF1 needs in dst for one AES block:
// cipher.Block is an interface, so a stack buffer passed to it would escape
// and allocate on every call.
const fpeScratch = aes.BlockSize

// ff1Encrypt enciphers the ASCII digit string x in place (2 <= len(x) <=
// MaxFreeDigits) under FF1 with radix 10 and the given tweak (at most 32
// bytes). scratch is an aes.BlockSize slice the cipher may write.
//
// It follows SP 800-38G Algorithm 7 with every numeral string held in a
// uint64 (a half has at most 18 digits) and two shortcuts: the CBC-MAC over
// P || Q runs once over the blocks that are the same in every round, so a
// round costs one AES call; and since b <= 8 gives d <= 12, S is R's first
// d bytes (no extra AES calls).
func ff1Encrypt(block cipher.Block, x, tweak, scratch []byte) {
	n := len(x)
	u := n / 2
	v := n - u
	b := ff1Bytes[v]
	d := 4*((b+3)/4) + 4
	t := len(tweak)

	// P = [1]^1 [2]^1 [1]^1 [radix]^3 [10]^1 [u mod 256]^1 [n]^4 [t]^4
	var p [16]byte
	p[0], p[1], p[2] = 1, 2, 1
	p[3], p[4], p[5] = 0, 0, 10
	p[6] = 10
	p[7] = byte(u)
	binary.BigEndian.PutUint32(p[8:], uint32(n))
	binary.BigEndian.PutUint32(p[12:], uint32(t))

	// Q = T || [0]^((-t-b-1) mod 16) || [i]^1 || [NUM(B)]^b
	var q [64]byte
	pad := (16 - (t+b+1)%16) % 16
	qlen := t + pad + 1 + b
	copy(q[:], tweak)

	// CBC-MAC of P and of the blocks of Q before its last: the same in
	// every round. The chaining value h stays in scratch, which the cipher
	// reads and writes in place.
	s := scratch[:16]
	copy(s, p[:])
	block.Encrypt(s, s)
	for j := 0; j+16 <= qlen-16; j += 16 {
		subtle.XORBytes(s, s, q[j:j+16])
		block.Encrypt(s, s)
	}
	hHi, hLo := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])

	// Q's last block as two big-endian words, its round byte and NUM(B)
	// still zero. NUM(B) is its last b <= 8 bytes: the low bits of lastLo.
	// The round byte sits at 15-b: in lastLo unless b == 8.
	lastHi := binary.BigEndian.Uint64(q[qlen-16:])
	lastLo := binary.BigEndian.Uint64(q[qlen-8:])

	a, bn := num(x[:u]), num(x[u:])
	for i := range uint64(ff1Rounds) {
		hi, lo := lastHi, lastLo|bn
		if b < 8 {
			lo |= i << (8 * b)
		} else {
			hi |= i
		}
		binary.BigEndian.PutUint64(s[:8], hHi^hi)
		binary.BigEndian.PutUint64(s[8:], hLo^lo)
		block.Encrypt(s, s) // R = PRF(P || Q)

		m := u
		if i%2 == 1 {
			m = v
		}
		var y uint64 // NUM(S) mod 10^m, S = R[:d]
		if d == 8 {
			y = modPow10(binary.BigEndian.Uint64(s[:8]), m)
		} else { // d == 12: a 96-bit NUM(S)
			y = bits.Rem64(uint64(binary.BigEndian.Uint32(s[:4])), binary.BigEndian.Uint64(s[4:12]), pow10[m])
		}
		c := a + y // a, y < 10^m <= 10^18: no overflow, and c < 2*10^m
		if c >= pow10[m] {
			c -= pow10[m]
		}
		a, bn = bn, c
	}
	putDigits(x[:u], a)
	putDigits(x[u:], bn)
	clear(s)
}

// modPow10 is x mod 10^m for 1 <= m <= 18, with constant divisors the
// compiler turns into multiplications (a 64-bit DIV is ~40 cycles, and FF1
// needs one per round).
func modPow10(x uint64, m int) uint64 {
	switch m {
	case 1:
		return x % 10
	case 2:
		return x % 100
	case 3:
		return x % 1000
	case 4:
		return x % 10000
	case 5:
		return x % 100000
	case 6:
		return x % 1000000
	case 7:
		return x % 10000000
	case 8:
		return x % 100000000
	case 9:
		return x % 1000000000
	case 10:
		return x % 10000000000
	case 11:
		return x % 100000000000
	case 12:
		return x % 1000000000000
	case 13:
		return x % 10000000000000
	case 14:
		return x % 100000000000000
	case 15:
		return x % 1000000000000000
	case 16:
		return x % 10000000000000000
	case 17:
		return x % 100000000000000000
	case 18:
		return x % 1000000000000000000
	}
	return x % pow10[m]
}

// num is NUM_10 of an ASCII digit string of at most 19 digits.
func num(x []byte) uint64 {
	var n uint64
	for _, c := range x {
		n = n*10 + uint64(c-'0')
	}
	return n
}

// putDigits writes n as len(x) ASCII digits, with leading zeros.
func putDigits(x []byte, n uint64) {
	for i := len(x) - 1; i >= 0; i-- {
		x[i] = byte('0' + n%10)
		n /= 10
	}
}

// luhnDigit returns the Luhn check digit (ASCII) for the ASCII digits body.
func luhnDigit(body []byte) byte {
	sum := 0
	double := true // the rightmost body digit is doubled: the check digit follows it
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// luhnValid reports whether the ASCII digit string passes the Luhn check.
func luhnValid(x []byte) bool {
	return len(x) >= 2 && luhnDigit(x[:len(x)-1]) == x[len(x)-1]
}

// hasCheckDigit reports whether a value of the format with n digits ends
// in a Luhn check digit that pseudonymise-format recomputes.
func hasCheckDigit(f Format, n int) bool {
	switch f {
	case FormatIMEI:
		return n == 15 // 14 (no check digit) and 16 (IMEISV) have none
	case FormatICCID:
		return true
	}
	return false
}

// appendFormatPseudonym treats dst[l:] as the value and replaces its digits
// with their format-preserving pseudonym, in place; separators stay. A value
// that cannot be enciphered (a byte that is neither a digit nor a separator,
// fewer than MinFreeDigits digits to encipher, or more than MaxFreeDigits) is
// masked instead: every byte but the separators becomes '0'. That fails
// closed while keeping the length and character class.
func (tr *Transform) appendFormatPseudonym(dst []byte, l int) []byte {
	dst = slices.Grow(dst, fpeScratch)
	out := dst[l:]
	scratch := dst[len(dst) : len(dst)+fpeScratch]

	var digits [maxFPEDigits]byte
	n := 0
	ok := true
	for _, c := range out {
		if '0' <= c && c <= '9' {
			if n == len(digits) {
				ok = false
				break
			}
			digits[n] = c
			n++
		} else if !fpeSeparator(c) {
			ok = false
			break
		}
	}
	if ok {
		ok = tr.permuteDigits(digits[:n], scratch)
	}
	if !ok {
		for i, c := range out {
			if !fpeSeparator(c) {
				out[i] = '0'
			}
		}
		return dst
	}
	j := 0
	for i, c := range out {
		if '0' <= c && c <= '9' {
			out[i] = digits[j]
			j++
		}
	}
	clear(digits[:n])
	return dst
}

// permuteDigits replaces the ASCII digits d with their pseudonym. It keeps
// min(KeepDigits, body-MinFreeDigits) leading digits (body is d without a
// check digit), enciphers the rest under FF1 tweaked by the kept digits, and
// recomputes the check digit. It reports false when d cannot be enciphered.
func (tr *Transform) permuteDigits(d, scratch []byte) bool {
	body := len(d)
	check := hasCheckDigit(tr.format, body)
	if check {
		body--
	}
	if body < MinFreeDigits {
		return false
	}
	keep := min(tr.spec.KeepDigits, body-MinFreeDigits)
	if body-keep > MaxFreeDigits {
		return false
	}
	// The kept digits are the tweak: two numbers that share their free digits
	// but not their prefix get unrelated pseudonyms.
	ff1Encrypt(tr.secrets.block, d[keep:body], d[:keep], scratch)
	if check {
		d[body] = luhnDigit(d[:body])
	}
	return true
}
