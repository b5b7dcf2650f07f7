package schemas

import (
	"encoding/binary"
	"math"
)

const (
	// maxDepth bounds nesting (records, arrays, maps, unions) so corrupt
	// input on a recursive schema cannot exhaust the stack.
	maxDepth = 64
	// zeroItemBudget bounds array and map items that decode from zero bytes
	// (nulls, empty records) per record, so a corrupt block count cannot
	// produce unbounded output from a few input bytes.
	zeroItemBudget = 1 << 16
)

// Decode reads one Avro body written with the decoder's writer schema into
// rec, resolving it to the reader layout. Values are valid until the next
// Decode into rec. It returns a *DecodeError (wrapping ErrMalformed, or
// ErrIncompatible for an unmatched enum symbol or union branch) on
// truncated or invalid input, including trailing bytes; rec.Values are then
// unspecified. It never panics and its memory use is bounded by a small
// multiple of len(src). A Record sized for another layout is resized.
func (d *Decoder) Decode(src []byte, rec *Record) error {
	if len(rec.Values) != len(d.layout.Fields) {
		rec.Values = make([]Value, len(d.layout.Fields))
	}
	rec.scratch = rec.scratch[:0]
	rec.spans = rec.spans[:0]
	rec.src, rec.pos, rec.depth, rec.budget = src, 0, 0, zeroItemBudget
	vals := rec.Values
	pos := 0 // authoritative for the inline cases; synced with rec.pos around the others
	for i := range d.ops {
		o := &d.ops[i]
		switch o.mode {
		case opString:
			n, p, ok := varint(src, pos)
			if !ok || n < 0 || n > int64(len(src)-p) {
				return d.failAt(o, pos, src, errLength)
			}
			end := p + int(n)
			vals[o.slot] = Value{Kind: o.sc.kind, Bytes: src[p:end:end]}
			pos = end
			continue
		case opVarint:
			x, p, ok := varint(src, pos)
			if !ok {
				return d.failAt(o, pos, src, errTruncated)
			}
			if o.sc.rd == rdInt && x != int64(int32(x)) {
				return d.failAt(o, pos, src, errIntRange)
			}
			vals[o.slot] = Value{Kind: o.sc.kind, Int: x}
			pos = p
			continue
		case opBool:
			if pos >= len(src) || src[pos] > 1 {
				return d.failAt(o, pos, src, errBool)
			}
			vals[o.slot] = Value{Kind: KindBool, Int: int64(src[pos])}
			pos++
			continue
		case opDouble:
			if len(src)-pos < 8 {
				return d.failAt(o, pos, src, errTruncated)
			}
			vals[o.slot] = Value{Kind: o.sc.kind, Float: math.Float64frombits(binary.LittleEndian.Uint64(src[pos:]))}
			pos += 8
			continue
		case opEnum:
			x, p, ok := varint(src, pos)
			if !ok || x < 0 || x >= int64(len(o.sc.enumMap)) {
				return d.failAt(o, pos, src, errEnumIndex)
			}
			j := o.sc.enumMap[x]
			if j < 0 {
				return d.failAt(o, pos, src, errEnumSymbol)
			}
			vals[o.slot] = Value{Kind: KindEnum, Int: int64(j), Bytes: o.sc.enumSym[j]}
			pos = p
			continue
		}
		rec.pos = pos
		var err error
		switch o.mode {
		case opScalar:
			err = rec.scalar(&o.sc, &vals[o.slot], false)
		case opUnionScalar:
			err = rec.unionScalar(o, &vals[o.slot])
		case opSkip:
			err = rec.skip(o.skip)
		case opNull:
			vals[o.slot] = Value{Kind: KindNull}
		case opJSON:
			start := len(rec.scratch)
			if err = rec.json(o.node); err == nil {
				vals[o.slot] = Value{Kind: KindJSON, Bytes: rec.scratch[start:len(rec.scratch):len(rec.scratch)]}
			}
		case opUnion:
			err = rec.union(o, &vals[o.slot])
		}
		if err != nil {
			return d.fail(o, rec, err)
		}
		pos = rec.pos
	}
	rec.pos = pos
	for i := range d.defaults {
		df := &d.defaults[i]
		vals[df.slot] = df.v
	}
	if rec.pos != len(src) {
		return &DecodeError{Field: "", Offset: rec.pos, Reason: errTrailing}
	}
	return nil
}

func (d *Decoder) fail(o *fieldOp, rec *Record, err error) error {
	return &DecodeError{Field: o.name, Offset: rec.pos, Reason: err}
}

// failAt reports an inline-decoded field's failure, refining the reason
// (a varint cut short is truncation, not a bad length).
func (d *Decoder) failAt(o *fieldOp, pos int, src []byte, reason error) error {
	if _, _, ok := varint(src, pos); !ok && o.mode != opBool && o.mode != opDouble {
		if pos >= len(src) || len(src)-pos < 10 {
			reason = errTruncated
		} else {
			reason = errVarint
		}
	} else if o.mode == opBool && pos >= len(src) {
		reason = errTruncated
	}
	return &DecodeError{Field: o.name, Offset: pos, Reason: reason}
}

// varint reads a zig-zag long at src[pos], returning the position after
// it; ok is false when the input ends or the varint exceeds 64 bits.
func varint(src []byte, pos int) (int64, int, bool) {
	if pos < len(src) && src[pos] < 0x80 {
		b := uint64(src[pos])
		return int64(b>>1) ^ -int64(b&1), pos + 1, true
	}
	return varintSlow(src, pos)
}

func varintSlow(src []byte, pos int) (int64, int, bool) {
	var u uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if pos >= len(src) {
			return 0, pos, false
		}
		b := src[pos]
		pos++
		if shift == 63 && b > 1 {
			return 0, pos, false
		}
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), pos, true
		}
	}
	return 0, pos, false
}

// varint reads a zig-zag encoded long.
func (r *Record) varint() (int64, error) {
	x, p, ok := varint(r.src, r.pos)
	if !ok {
		if p >= len(r.src) {
			return 0, errTruncated
		}
		return 0, errVarint
	}
	r.pos = p
	return x, nil
}

// length reads a byte length and checks it against the remaining input.
func (r *Record) length() (int, error) {
	n, err := r.varint()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > int64(len(r.src)-r.pos) {
		return 0, errLength
	}
	return int(n), nil
}

// scalar reads one scalar into v. Text generated by a conversion (decimal)
// goes to the record's scratch, or to tmp for a nested value.
func (r *Record) scalar(sc *scalar, v *Value, nested bool) error {
	switch sc.rd {
	case rdNull:
		*v = Value{Kind: KindNull}
	case rdBool:
		if r.pos >= len(r.src) {
			return errTruncated
		}
		b := r.src[r.pos]
		if b > 1 {
			return errBool
		}
		r.pos++
		*v = Value{Kind: KindBool, Int: int64(b)}
	case rdInt, rdLong:
		x, err := r.varint()
		if err != nil {
			return err
		}
		if sc.rd == rdInt && x != int64(int32(x)) {
			return errIntRange
		}
		switch sc.conv {
		case cvFloat32:
			*v = Value{Kind: sc.kind, Float: float64(float32(x))}
			return nil
		case cvFloat64:
			*v = Value{Kind: sc.kind, Float: float64(x)}
			return nil
		case cvMsToUs:
			if x > math.MaxInt64/1000 || x < math.MinInt64/1000 {
				return errTimeRange
			}
			x *= 1000
		case cvUsToMs:
			x = floorDiv(x, 1000)
		}
		*v = Value{Kind: sc.kind, Int: x}
	case rdFloat:
		if len(r.src)-r.pos < 4 {
			return errTruncated
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(r.src[r.pos:]))
		r.pos += 4
		*v = Value{Kind: sc.kind, Float: float64(f)}
	case rdDouble:
		if len(r.src)-r.pos < 8 {
			return errTruncated
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.src[r.pos:]))
		r.pos += 8
		*v = Value{Kind: sc.kind, Float: f}
	case rdBytes, rdFixed:
		n := sc.size
		if sc.rd == rdBytes {
			var err error
			if n, err = r.length(); err != nil {
				return err
			}
		} else if n > len(r.src)-r.pos {
			return errTruncated
		}
		b := r.src[r.pos : r.pos+n : r.pos+n]
		r.pos += n
		if sc.conv == cvDecimal {
			var err error
			if nested {
				r.tmp, err = appendDecimal(r.tmp[:0], b, sc.scale)
				b = r.tmp
			} else {
				start := len(r.scratch)
				r.scratch, err = appendDecimal(r.scratch, b, sc.scale)
				b = r.scratch[start:len(r.scratch):len(r.scratch)]
			}
			if err != nil {
				return err
			}
		}
		*v = Value{Kind: sc.kind, Bytes: b}
	case rdEnum:
		x, err := r.varint()
		if err != nil {
			return err
		}
		if x < 0 || x >= int64(len(sc.enumMap)) {
			return errEnumIndex
		}
		j := sc.enumMap[x]
		if j < 0 {
			return errEnumSymbol
		}
		*v = Value{Kind: KindEnum, Int: int64(j), Bytes: sc.enumSym[j]}
	}
	return nil
}

func floorDiv(x, d int64) int64 {
	q := x / d
	if x%d < 0 {
		q--
	}
	return q
}

func (r *Record) unionIndex(n int) (int, error) {
	x, err := r.varint()
	if err != nil {
		return 0, err
	}
	if x < 0 || x >= int64(n) {
		return 0, errUnionIndex
	}
	return int(x), nil
}

func (r *Record) unionScalar(o *fieldOp, v *Value) error {
	i, err := r.unionIndex(len(o.branches))
	if err != nil {
		return err
	}
	b := &o.branches[i]
	switch b.mode {
	case bNull:
		*v = Value{Kind: KindNull}
		return nil
	case bScalar:
		return r.scalar(&b.sc, v, false)
	}
	return errUnionBranch
}

func (r *Record) union(o *fieldOp, v *Value) error {
	i, err := r.unionIndex(len(o.branches))
	if err != nil {
		return err
	}
	b := &o.branches[i]
	switch b.mode {
	case bNull:
		*v = Value{Kind: KindNull}
		return nil
	case bScalar:
		return r.scalar(&b.sc, v, false)
	case bJSON:
		start := len(r.scratch)
		if err := r.json(b.node); err != nil {
			return err
		}
		*v = Value{Kind: KindJSON, Bytes: r.scratch[start:len(r.scratch):len(r.scratch)]}
		return nil
	}
	return errUnionBranch
}

// json transcodes one writer value to the reader's JSON, appending to scratch.
func (r *Record) json(n *node) error {
	switch n.code {
	case nScalar:
		var v Value
		if err := r.scalar(&n.sc, &v, true); err != nil {
			return err
		}
		r.scratch = AppendJSONValue(r.scratch, &v)
		return nil
	case nNull:
		r.scratch = append(r.scratch, "null"...)
		return nil
	}
	if r.depth >= maxDepth {
		return errDepth
	}
	r.depth++
	var err error
	switch n.code {
	case nUnion:
		var i int
		if i, err = r.unionIndex(len(n.branches)); err == nil {
			if b := n.branches[i]; b != nil {
				err = r.json(b)
			} else {
				err = errUnionBranch
			}
		}
	case nRecord:
		err = r.record(n.rec)
	case nArray:
		r.scratch = append(r.scratch, '[')
		err = r.blocks(n.elem, false)
		r.scratch = append(r.scratch, ']')
	case nMap:
		r.scratch = append(r.scratch, '{')
		err = r.blocks(n.elem, true)
		r.scratch = append(r.scratch, '}')
	}
	r.depth--
	return err
}

// blockCount reads an array or map block header, returning the item count
// (0 ends the sequence).
func (r *Record) blockCount() (int, error) {
	cnt, err := r.varint()
	if err != nil {
		return 0, err
	}
	if cnt < 0 {
		if cnt == math.MinInt64 {
			return 0, errBlockCount
		}
		cnt = -cnt
		if _, err := r.length(); err != nil { // block size in bytes
			return 0, err
		}
	}
	// Every item consumes at least one byte or one unit of the zero-size budget.
	if cnt > int64(len(r.src)-r.pos)+int64(r.budget) {
		return 0, errBlockCount
	}
	return int(cnt), nil
}

func (r *Record) blocks(elem *node, isMap bool) error {
	first := true
	for {
		cnt, err := r.blockCount()
		if err != nil || cnt == 0 {
			return err
		}
		for range cnt {
			if !first {
				r.scratch = append(r.scratch, ',')
			}
			first = false
			before := r.pos
			if isMap {
				n, err := r.length()
				if err != nil {
					return err
				}
				r.scratch = appendJSONString(r.scratch, r.src[r.pos:r.pos+n])
				r.scratch = append(r.scratch, ':')
				r.pos += n
			}
			if err := r.json(elem); err != nil {
				return err
			}
			if r.pos == before {
				if r.budget--; r.budget < 0 {
					return errBlockCount
				}
			}
		}
	}
}

func (r *Record) record(p *recPlan) error {
	if !p.reorder {
		r.scratch = append(r.scratch, '{')
		for i := range p.steps {
			s := &p.steps[i]
			switch {
			case s.konst != nil:
				r.scratch = append(r.scratch, s.konst...)
			case s.skip != nil:
				if err := r.skip(s.skip); err != nil {
					return err
				}
			default:
				r.scratch = append(r.scratch, s.key...)
				if err := r.json(s.node); err != nil {
					return err
				}
			}
		}
		r.scratch = append(r.scratch, '}')
		return nil
	}
	// Writer order differs from reader order: write each field's JSON aside,
	// note its span, then assemble the object in reader order and move it
	// back over the parts.
	start := len(r.scratch)
	base := len(r.spans)
	for range p.keys {
		r.spans = append(r.spans, span{})
	}
	for i := range p.steps {
		s := &p.steps[i]
		if s.skip != nil {
			if err := r.skip(s.skip); err != nil {
				return err
			}
			continue
		}
		b := len(r.scratch)
		if err := r.json(s.node); err != nil {
			return err
		}
		r.spans[base+s.pos] = span{b, len(r.scratch)}
	}
	mid := len(r.scratch)
	r.scratch = append(r.scratch, '{')
	for pos, key := range p.keys {
		r.scratch = append(r.scratch, key...)
		if c := p.consts[pos]; c != nil {
			r.scratch = append(r.scratch, c...)
		} else {
			sp := r.spans[base+pos]
			r.scratch = append(r.scratch, r.scratch[sp.start:sp.end]...)
		}
	}
	r.scratch = append(r.scratch, '}')
	n := copy(r.scratch[start:], r.scratch[mid:])
	r.scratch = r.scratch[:start+n]
	r.spans = r.spans[:base]
	return nil
}

// skip reads past one writer value.
func (r *Record) skip(n *skipNode) error {
	switch n.code {
	case skNull:
		return nil
	case skBool:
		if r.pos >= len(r.src) {
			return errTruncated
		}
		r.pos++
		return nil
	case skVarint:
		_, err := r.varint()
		return err
	case skFloat, skDouble, skFixed:
		size := n.size
		if n.code == skFloat {
			size = 4
		} else if n.code == skDouble {
			size = 8
		}
		if size > len(r.src)-r.pos {
			return errTruncated
		}
		r.pos += size
		return nil
	case skBytes:
		l, err := r.length()
		r.pos += l
		return err
	}
	if r.depth >= maxDepth {
		return errDepth
	}
	r.depth++
	defer func() { r.depth-- }()
	switch n.code {
	case skRecord:
		for _, f := range n.fields {
			if err := r.skip(f); err != nil {
				return err
			}
		}
	case skUnion:
		i, err := r.unionIndex(len(n.branches))
		if err != nil {
			return err
		}
		return r.skip(n.branches[i])
	case skArray, skMap:
		for {
			cnt, err := r.varint()
			if err != nil || cnt == 0 {
				return err
			}
			if cnt < 0 {
				if cnt == math.MinInt64 {
					return errBlockCount
				}
				size, err := r.length()
				if err != nil {
					return err
				}
				r.pos += size
				continue
			}
			if cnt > int64(len(r.src)-r.pos)+int64(r.budget) {
				return errBlockCount
			}
			for range cnt {
				before := r.pos
				if n.code == skMap {
					l, err := r.length()
					if err != nil {
						return err
					}
					r.pos += l
				}
				if err := r.skip(n.elem); err != nil {
					return err
				}
				if r.pos == before {
					if r.budget--; r.budget < 0 {
						return errBlockCount
					}
				}
			}
		}
	}
	return nil
}
