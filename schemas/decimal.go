package schemas

var zeroDigit = []byte{'0'}

// maxDecimalBytes bounds the unscaled value of a decimal (2^1024 ≈ 1.8e308).
const maxDecimalBytes = 128

// appendDecimal appends the decimal text of a big-endian two's-complement
// unscaled integer b with the given scale: b = 0x3039 (12345), scale 2 ->
// "123.45"; scale 3 on 5 -> "0.005". It does not allocate beyond dst.
func appendDecimal(dst, b []byte, scale int) ([]byte, error) {
	if len(b) > maxDecimalBytes {
		return dst, errDecimalSize
	}
	neg := len(b) > 0 && b[0]&0x80 != 0
	var digits [320]byte // filled from the end
	nd := 0
	if len(b) <= 8 {
		var v int64
		for _, x := range b {
			v = v<<8 | int64(x)
		}
		if n := uint(64 - 8*len(b)); n < 64 && len(b) > 0 {
			v = v << n >> n // sign-extend
		}
		mag := uint64(v)
		if v < 0 {
			mag = uint64(-v)
		}
		for mag > 0 {
			nd++
			digits[len(digits)-nd] = byte('0' + mag%10)
			mag /= 10
		}
	} else {
		// Magnitude as big-endian uint32 words, then repeated division by 1e9.
		var mb [maxDecimalBytes + 3]byte
		pad := (4 - len(b)%4) % 4
		m := mb[:pad+len(b)]
		fill := byte(0)
		if neg {
			fill = 0xFF
		}
		for i := range pad {
			m[i] = fill
		}
		copy(m[pad:], b)
		if neg {
			carry := byte(1)
			for i := len(m) - 1; i >= 0; i-- {
				s := ^m[i] + carry
				if carry == 1 && s != 0 {
					carry = 0
				}
				m[i] = s
			}
		}
		var words [(maxDecimalBytes + 3) / 4]uint32
		nw := len(m) / 4
		for i := range nw {
			words[i] = uint32(m[4*i])<<24 | uint32(m[4*i+1])<<16 | uint32(m[4*i+2])<<8 | uint32(m[4*i+3])
		}
		w := words[:nw]
		for len(w) > 0 && w[0] == 0 {
			w = w[1:]
		}
		for len(w) > 0 {
			var rem uint64
			for i := range w {
				cur := rem<<32 | uint64(w[i])
				w[i] = uint32(cur / 1e9)
				rem = cur % 1e9
			}
			for len(w) > 0 && w[0] == 0 {
				w = w[1:]
			}
			for j := 0; j < 9 && (rem > 0 || len(w) > 0); j++ {
				nd++
				digits[len(digits)-nd] = byte('0' + rem%10)
				rem /= 10
			}
		}
	}
	d := digits[len(digits)-nd:]
	if nd == 0 {
		return appendScaled(dst, zeroDigit, scale), nil
	}
	if neg {
		dst = append(dst, '-')
	}
	return appendScaled(dst, d, scale), nil
}

func appendScaled(dst, d []byte, scale int) []byte {
	if scale <= 0 {
		return append(dst, d...)
	}
	if len(d) > scale {
		dst = append(dst, d[:len(d)-scale]...)
		dst = append(dst, '.')
		return append(dst, d[len(d)-scale:]...)
	}
	dst = append(dst, '0', '.')
	for range scale - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}
