package audit

// FindRawIdentifier returns the first run of digits in b shaped like a raw
// subscriber identifier, as [start, end) offsets, or -1, -1. A run counts
// only when it stands alone (no letter or digit on either side, so parts
// of hex hashes and base64 tokens do not match) and it is:
//
//   - 15 digits passing the Luhn check (IMEI) or starting with a
//     plausible MCC digit 2-7 (IMSI);
//   - 19 or 20 digits starting with 89 (ICCID);
//   - 11 to 15 digits after a '+' or inside a JSON string ("4915112345678"),
//     which is how an E.164 MSISDN appears. Bare JSON numbers of that
//     length (byte counters) are not flagged.
//
// It is a test aid for "no raw personal data leaves in audit events": it
// knows the formats in DOMAIN.md, it is not a general PII detector.
func FindRawIdentifier(b []byte) (start, end int) {
	inString := false
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if ch == '"' {
			inString = !inString
			continue
		}
		if ch == '\\' && inString {
			i++ // skip the escaped byte
			continue
		}
		if !isDigit(ch) {
			continue
		}
		j := i
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		before := byte(' ')
		if i > 0 {
			before = b[i-1]
		}
		after := byte(' ')
		if j < len(b) {
			after = b[j]
		}
		if !isAlnum(before) && !isAlnum(after) && identifierShaped(b[i:j], inString || before == '+') {
			return i, j
		}
		i = j - 1
	}
	return -1, -1
}

// ContainsRawIdentifier reports whether b holds something shaped like a raw
// MSISDN, IMSI, IMEI or ICCID (see FindRawIdentifier).
func ContainsRawIdentifier(b []byte) bool {
	s, _ := FindRawIdentifier(b)
	return s >= 0
}

func identifierShaped(d []byte, quoted bool) bool {
	n := len(d)
	switch {
	case n == 15 && (luhn(d) || (d[0] >= '2' && d[0] <= '7')):
		return true
	case (n == 19 || n == 20) && d[0] == '8' && d[1] == '9':
		return true
	case n >= 11 && n <= 15 && quoted && d[0] != '0':
		return true
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	for i := range d {
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
