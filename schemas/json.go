package schemas

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// safeASCII[b] is true for ASCII bytes that a JSON string holds verbatim.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a quoted JSON string (RFC 8259). Control
// characters, quote and backslash are escaped, U+2028 and U+2029 are escaped
// so the output is also safe inside JavaScript, and each invalid UTF-8 byte
// is replaced by U+FFFD. It does not allocate beyond growing dst.
func AppendJSONString(dst, s []byte) []byte {
	return appendJSONString(dst, s)
}

// AppendJSONKey appends `"name":`. Views precompute these once per field.
func AppendJSONKey(dst []byte, name string) []byte {
	// Read-only view of the string's bytes; appendJSONString never writes to s.
	dst = appendJSONString(dst, unsafe.Slice(unsafe.StringData(name), len(name)))
	return append(dst, ':')
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether none of the 8 bytes in x needs attention: all are
// ASCII, >= 0x20, and neither '"' nor '\\'.
func plain8(x uint64) bool {
	ctl := (x - 0x20*lsb) &^ x // high bit set where a byte < 0x20 (or >= 0x80, caught below)
	q := x ^ ('"' * lsb)       // zero byte where '"'
	bs := x ^ ('\\' * lsb)     // zero byte where '\\'
	zq := (q - lsb) &^ q       // high bit where q has a zero byte
	zb := (bs - lsb) &^ bs
	return (ctl|zq|zb|x)&msb == 0
}

func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if len(s)-i >= 8 {
			if plain8(binary.LittleEndian.Uint64(s[i:])) {
				i += 8
				continue
			}
		} else if len(s) >= 8 && plain8(binary.LittleEndian.Uint64(s[len(s)-8:])) {
			// The last 8 bytes, which cover the remaining tail, are plain.
			break
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSONValue appends v's JSON encoding:
//
//   - KindNull: null; KindBool: true or false; integer kinds: the number;
//   - KindFloat, KindDouble: the shortest number that round-trips at the
//     kind's precision (as encoding/json does); NaN and ±Inf become null;
//   - KindString, KindEnum: a JSON string;
//   - KindBytes, KindFixed: a base64 (standard, padded) string;
//   - KindTimestampMillis: "2026-11-25T10:00:00.123Z" (RFC 3339, UTC, 3
//     fraction digits); KindTimestampMicros: 6 fraction digits;
//     KindDate: "2026-11-25". Instants outside years 0000-9999 have no
//     RFC 3339 form and are written as the plain number instead;
//   - KindJSON: Bytes copied as is (null when empty).
func AppendJSONValue(dst []byte, v *Value) []byte {
	switch v.Kind {
	case KindNull:
		return append(dst, "null"...)
	case KindBool:
		if v.Int != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case KindInt, KindLong:
		return strconv.AppendInt(dst, v.Int, 10)
	case KindFloat:
		return appendFloat(dst, v.Float, 32)
	case KindDouble:
		return appendFloat(dst, v.Float, 64)
	case KindString, KindEnum:
		return appendJSONString(dst, v.Bytes)
	case KindBytes, KindFixed:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes)
		return append(dst, '"')
	case KindTimestampMillis:
		return appendTimestamp(dst, v.Int, 1_000, 3)
	case KindTimestampMicros:
		return appendTimestamp(dst, v.Int, 1_000_000, 6)
	case KindDate:
		return appendDate(dst, v.Int)
	case KindJSON:
		if len(v.Bytes) == 0 {
			return append(dst, "null"...)
		}
		return append(dst, v.Bytes...)
	}
	return append(dst, "null"...)
}

// appendFloat formats like encoding/json: 'f' for moderate magnitudes, 'e'
// otherwise, with a two-digit exponent trimmed ("1e-07" -> "1e-7").
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil inverse).
func civil(days int64) (y int64, m, d int) {
	z := days + 719468
	era := z
	if era < 0 {
		era -= 146096
	}
	era /= 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// Days from 0000-01-01 to 9999-12-31 inclusive, relative to the epoch.
const (
	minDay = -719528
	maxDay = 2932896
)

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

func appendYMD(dst []byte, days int64) []byte {
	y, m, d := civil(days)
	yy := int(y)
	dst = append(dst, byte('0'+yy/1000), byte('0'+yy/100%10), byte('0'+yy/10%10), byte('0'+yy%10), '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	return append2(dst, d)
}

func appendDate(dst []byte, days int64) []byte {
	if days < minDay || days > maxDay {
		return strconv.AppendInt(dst, days, 10)
	}
	dst = append(dst, '"')
	dst = appendYMD(dst, days)
	return append(dst, '"')
}

// appendTimestamp writes ts (in units of 1/perSec seconds) as an RFC 3339
// UTC string with digits fraction digits.
func appendTimestamp(dst []byte, ts, perSec int64, digits int) []byte {
	perDay := 86_400 * perSec
	days := ts / perDay
	rem := ts % perDay
	if rem < 0 {
		rem += perDay
		days--
	}
	if days < minDay || days > maxDay {
		return strconv.AppendInt(dst, ts, 10)
	}
	secs := int(rem / perSec)
	frac := rem % perSec
	dst = append(dst, '"')
	dst = appendYMD(dst, days)
	dst = append(dst, 'T')
	dst = append2(dst, secs/3600)
	dst = append(dst, ':')
	dst = append2(dst, secs/60%60)
	dst = append(dst, ':')
	dst = append2(dst, secs%60)
	dst = append(dst, '.')
	var buf [6]byte
	for i := digits - 1; i >= 0; i-- {
		buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	dst = append(dst, buf[:digits]...)
	return append(dst, 'Z', '"')
}
