package generate

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// LuhnCheckDigit returns the Luhn (mod 10) check digit that completes
// digits, e.g. the 15th digit of an IMEI from its first 14. It returns an
// error if digits is empty or has a non-digit.
func LuhnCheckDigit(digits string) (byte, error) {
	if digits == "" || !allDigits(digits) {
		return 0, fmt.Errorf("generate: luhn: %q is not a string of digits", digits)
	}
	return '0' + byte((10-luhnSum(digits, true)%10)%10), nil
}

// LuhnValid reports whether number is all digits and ends in a correct Luhn
// check digit.
func LuhnValid(number string) bool {
	return len(number) >= 2 && allDigits(number) && luhnSum(number, false)%10 == 0
}

// luhnSum sums digits the Luhn way. With forCheck, the rightmost digit of
// digits is doubled (the check digit is still to come).
func luhnSum(digits string, forCheck bool) int {
	sum := 0
	double := forCheck
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ValidIMSI reports whether s looks like an IMSI: exactly 15 digits (MCC,
// 2- or 3-digit MNC, MSIN). The generator's IMSIs start with 262 (Germany).
func ValidIMSI(s string) bool {
	return len(s) == 15 && allDigits(s)
}

// ValidMSISDN reports whether s is a phone number in E.164 without the plus
// sign: 8 to 15 digits, not starting with 0. The generator's MSISDNs are
// German mobile numbers: 49, then 15x/16x/17x, 12 or 13 digits in all.
func ValidMSISDN(s string) bool {
	return len(s) >= 8 && len(s) <= 15 && allDigits(s) && s[0] != '0'
}

// ValidIMEI reports whether s is an IMEI: 15 digits, the last a Luhn check
// digit over the first 14 (8-digit TAC, 6-digit serial).
func ValidIMEI(s string) bool {
	return len(s) == 15 && LuhnValid(s)
}

// ValidICCID reports whether s is a SIM serial number: 19 or 20 digits,
// starting with 89 (telecom), ending in a Luhn check digit.
func ValidICCID(s string) bool {
	return (len(s) == 19 || len(s) == 20) && strings.HasPrefix(s, "89") && LuhnValid(s)
}

// ValidCellID reports whether s is a cell global identity as the catalog
// writes it: MCC (3 digits) - MNC (2 or 3 digits) - cell identity in upper
// case hex, 7 digits (LTE ECI, 28 bits: ECGI) or 9 digits (NR NCI, 36 bits:
// NCGI), e.g. 262-01-1A00301.
func ValidCellID(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) != 3 || !allDigits(parts[0]) ||
		(len(parts[1]) != 2 && len(parts[1]) != 3) || !allDigits(parts[1]) ||
		(len(parts[2]) != 7 && len(parts[2]) != 9) {
		return false
	}
	for _, c := range parts[2] {
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// ValidUUID reports whether s is a UUID in its canonical text form
// (8-4-4-4-12 lower-case hex digits).
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// appendDigits appends n random decimal digits.
func appendDigits(b []byte, r *rand.Rand, n int) []byte {
	for range n {
		b = append(b, byte('0'+r.IntN(10)))
	}
	return b
}

// withLuhn appends the Luhn check digit of b to b.
func withLuhn(b []byte) string {
	d, err := LuhnCheckDigit(string(b))
	if err != nil {
		panic(err) // b is built from digits only
	}
	return string(append(b, d))
}

// newIMSI returns 262 + mnc + a 10-digit MSIN.
func newIMSI(r *rand.Rand, mnc string) string {
	b := make([]byte, 0, 15)
	b = append(b, "262"...)
	b = append(b, mnc...)
	return string(appendDigits(b, r, 15-len(b)))
}

// newIMEI returns tac (8 digits) + a 6-digit serial + check digit.
func newIMEI(r *rand.Rand, tac string) string {
	b := make([]byte, 0, 15)
	b = append(b, tac...)
	return withLuhn(appendDigits(b, r, 6))
}

// newICCID returns 89 (telecom) + 49 (Germany) + the issuer's 2-digit code +
// a 12-digit account number + check digit: 19 digits.
func newICCID(r *rand.Rand, issuer string) string {
	b := make([]byte, 0, 19)
	b = append(b, "8949"...)
	b = append(b, issuer...)
	return withLuhn(appendDigits(b, r, 12))
}

// newMSISDN returns 49 + a German mobile prefix (without the trunk 0) +
// subscriber digits: 7 digits after a 4-digit prefix (015x), 7 or 8 after a
// 3-digit one (016x, 017x); 12 or 13 digits in all.
func newMSISDN(r *rand.Rand, prefix string) string {
	n := 7
	if len(prefix) == 3 && r.IntN(2) == 0 {
		n = 8
	}
	b := make([]byte, 0, 13)
	b = append(b, "49"...)
	b = append(b, prefix...)
	b = append(b, byte('1'+r.IntN(9))) // no leading 0 after the prefix
	return string(appendDigits(b, r, n-1))
}

// newUUID returns a random (version 4) UUID in canonical form.
func newUUID(r *rand.Rand) string {
	var u [16]byte
	hi, lo := r.Uint64(), r.Uint64()
	for i := range 8 {
		u[i] = byte(hi >> (56 - 8*i))
		u[8+i] = byte(lo >> (56 - 8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return string(b)
}
