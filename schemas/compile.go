package schemas

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hamba/avro/v2"
)

// This file compiles a (writer schema, reader layout) pair into a Decoder:
// a slice of per-field ops for the top level, and a tree of nodes that
// transcode complex values straight to JSON. Resolution follows the Avro
// specification's rules; see doc.go for the deliberate deviations.

// readOp says how to read one scalar from writer bytes.
type readOp uint8

const (
	rdNull readOp = iota
	rdBool
	rdInt
	rdLong
	rdFloat
	rdDouble
	rdBytes // bytes or string
	rdFixed
	rdEnum
)

// convOp converts the writer value to the reader's kind.
type convOp uint8

const (
	cvNone    convOp = iota
	cvFloat32        // int/long -> float
	cvFloat64        // int/long -> double
	cvMsToUs         // timestamp-millis -> timestamp-micros
	cvUsToMs         // timestamp-micros -> timestamp-millis
	cvDecimal        // bytes/fixed -> decimal text (KindString)
)

// scalar reads one primitive, enum or fixed value into a Value.
type scalar struct {
	rd      readOp
	kind    Kind // reader kind reported
	conv    convOp
	size    int      // fixed size
	scale   int      // decimal scale
	enumMap []int32  // writer symbol index -> reader symbol index (-1: none)
	enumSym [][]byte // reader symbol index -> symbol name
}

type nodeCode uint8

const (
	nScalar nodeCode = iota
	nNull
	nRecord
	nArray
	nMap
	nUnion // writer union: one node per writer branch
)

// node transcodes one writer value to the JSON of the reader type.
type node struct {
	code     nodeCode
	sc       scalar
	elem     *node    // array items, map values
	rec      *recPlan // records
	branches []*node  // writer union branches; nil = no reader match
}

// recPlan transcodes a record. Steps run in writer order. When the writer
// fields appear in the reader's order (the common case) the steps emit keys
// and interleaved default constants directly; otherwise (reorder) each
// field's JSON is written aside and the object is assembled in reader order.
type recPlan struct {
	steps   []recStep
	reorder bool
	keys    [][]byte // reorder: key by reader position, with its leading comma
	consts  [][]byte // reorder: default JSON by reader position (nil: from writer)
}

type recStep struct {
	skip  *skipNode // writer-only field
	node  *node     // writer field read into reader position pos
	pos   int
	key   []byte // !reorder: `,"name":` (no comma for the first field)
	konst []byte // !reorder: key and default JSON of a reader-only field
}

type skipCode uint8

const (
	skNull skipCode = iota
	skBool
	skVarint
	skFloat
	skDouble
	skBytes
	skFixed
	skRecord
	skArray
	skMap
	skUnion
)

// skipNode skips one writer value.
type skipNode struct {
	code     skipCode
	size     int
	fields   []*skipNode
	elem     *skipNode
	branches []*skipNode
}

type opMode uint8

const (
	opSkip        opMode = iota
	opNull               // writer type null
	opScalar             // scalar reader field
	opJSON               // KindJSON reader field
	opUnion              // writer union: per-branch behaviour
	opUnionScalar        // writer union whose branches are all null or scalar (hot path)

	// Specialised opScalar forms decoded inline by Decode.
	opString // string or bytes, no conversion
	opVarint // int or long read as int, long, date or timestamp, no conversion
	opBool
	opDouble
	opEnum
)

type branchMode uint8

const (
	bBad branchMode = iota
	bNull
	bScalar
	bJSON
)

type branch struct {
	mode branchMode
	sc   scalar
	node *node
}

// fieldOp reads one writer field of the top-level record.
type fieldOp struct {
	mode     opMode
	slot     int
	name     string
	sc       scalar
	skip     *skipNode
	node     *node
	branches []branch
}

type slotDefault struct {
	slot int
	v    Value
}

// Decoder reads records written with one writer schema into a reader
// Layout. It is compiled once and is immutable: safe for concurrent use,
// with all per-record state in the Record.
type Decoder struct {
	layout   *Layout
	writer   avro.Schema
	ops      []fieldOp
	defaults []slotDefault
}

// Layout returns the reader layout the decoder fills.
func (d *Decoder) Layout() *Layout { return d.layout }

// Writer returns the writer schema the decoder reads.
func (d *Decoder) Writer() avro.Schema { return d.writer }

type pair struct{ w, r avro.Schema }

type compiler struct {
	nodes map[pair]*node
	skips map[avro.Schema]*skipNode
}

func incompatible(path, format string, args ...any) error {
	return fmt.Errorf("schemas: field %q: %s: %w", path, fmt.Sprintf(format, args...), ErrIncompatible)
}

// NewDecoder compiles a decoder reading records written with writer into
// reader's layout. It fails, naming the field, when a reader field has no
// writer counterpart and no default, or when a writer type cannot be
// resolved to the reader's type.
func NewDecoder(writer avro.Schema, reader *Layout) (*Decoder, error) {
	if reader == nil {
		return nil, errors.New("schemas: NewDecoder: nil reader layout")
	}
	wrec, ok := deref(writer).(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("schemas: writer schema must be a record, got %s: %w", typeName(writer), ErrIncompatible)
	}
	c := &compiler{nodes: map[pair]*node{}, skips: map[avro.Schema]*skipNode{}}
	d := &Decoder{layout: reader, writer: writer}
	rfields := reader.Schema.Fields()
	matched := matchFields(wrec.Fields(), rfields)
	used := make([]bool, len(rfields))
	for wi, wf := range wrec.Fields() {
		ri := matched[wi]
		if ri < 0 {
			d.ops = append(d.ops, fieldOp{mode: opSkip, slot: -1, name: wf.Name(), skip: c.skip(wf.Type())})
			continue
		}
		used[ri] = true
		op, err := c.topField(wf.Type(), &reader.Fields[ri])
		if err != nil {
			return nil, err
		}
		d.ops = append(d.ops, op)
	}
	for ri, rf := range rfields {
		if used[ri] {
			continue
		}
		if !rf.HasDefault() {
			return nil, incompatible(rf.Name(), "reader field has no default and writer %s lacks it", typeName(wrec))
		}
		v, err := defaultValue(rf.Type(), rf.Default())
		if err != nil {
			return nil, fmt.Errorf("schemas: field %q: default: %w", rf.Name(), err)
		}
		d.defaults = append(d.defaults, slotDefault{slot: ri, v: v})
	}
	return d, nil
}

// matchFields maps each writer field to a reader field index (-1: none),
// by name first, then by reader alias. Each reader field matches once.
func matchFields(wf, rf []*avro.Field) []int {
	out := make([]int, len(wf))
	taken := make([]bool, len(rf))
	for i, w := range wf {
		out[i] = -1
		for j, r := range rf {
			if !taken[j] && r.Name() == w.Name() {
				out[i], taken[j] = j, true
				break
			}
		}
	}
	for i, w := range wf {
		if out[i] >= 0 {
			continue
		}
		for j, r := range rf {
			if !taken[j] && slices.Contains(r.Aliases(), w.Name()) {
				out[i], taken[j] = j, true
				break
			}
		}
	}
	return out
}

// topField compiles the op reading writer type w into reader field f.
func (c *compiler) topField(w avro.Schema, f *Field) (fieldOp, error) {
	op := fieldOp{slot: f.Index, name: f.Name}
	w = deref(w)
	r := deref(f.Schema)
	// One non-null writer branch (or a non-union writer) as the reader reads
	// it: a scalar slot, or a JSON node for complex reader fields.
	compile := func(wb avro.Schema) (branch, error) {
		if f.Kind != KindJSON {
			sc, err := c.scalar(wb, scalarBranch(r), f.Name)
			return branch{mode: bScalar, sc: sc}, err
		}
		n, err := c.node(wb, r, f.Name)
		return branch{mode: bJSON, node: n}, err
	}
	if wu, ok := w.(*avro.UnionSchema); ok {
		op.mode = opUnion
		if f.Kind != KindJSON {
			op.mode = opUnionScalar
		}
		var firstErr error
		good := 0
		for _, wb := range wu.Types() {
			wb = deref(wb)
			var b branch // bBad unless it matches
			switch {
			case wb.Type() == avro.Null && f.Nullable:
				b.mode = bNull
			case wb.Type() == avro.Null:
			default:
				cb, err := compile(wb)
				if err != nil {
					firstErr = keepFirst(firstErr, err)
				} else {
					b = cb
				}
			}
			if b.mode != bBad {
				good++
			}
			op.branches = append(op.branches, b)
		}
		if good == 0 {
			if firstErr == nil {
				firstErr = incompatible(f.Name, "no branch of writer %s matches reader %s", typeName(w), typeName(r))
			}
			return op, firstErr
		}
		return op, nil
	}
	if w.Type() == avro.Null {
		if !f.Nullable {
			return op, incompatible(f.Name, "writer type null cannot be read as reader %s", typeName(r))
		}
		op.mode = opNull
		return op, nil
	}
	b, err := compile(w)
	if err != nil {
		return op, err
	}
	if f.Kind != KindJSON {
		op.mode, op.sc = fastMode(b.sc), b.sc
	} else {
		op.mode, op.node = opJSON, b.node
	}
	return op, nil
}

// fastMode picks the inline form of a scalar op when there is one.
func fastMode(sc scalar) opMode {
	switch {
	case sc.rd == rdBytes && sc.conv == cvNone:
		return opString
	case sc.rd == rdLong && sc.conv == cvNone:
		return opVarint
	case sc.rd == rdBool:
		return opBool
	case sc.rd == rdDouble:
		return opDouble
	case sc.rd == rdEnum:
		return opEnum
	}
	return opScalar
}

func keepFirst(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// node compiles the transcoder of writer type w into reader type r.
func (c *compiler) node(w, r avro.Schema, path string) (*node, error) {
	w, r = deref(w), deref(r)
	if wu, ok := w.(*avro.UnionSchema); ok {
		n := &node{code: nUnion}
		var firstErr error
		good := 0
		for _, wb := range wu.Types() {
			bn, err := c.node(wb, r, path)
			if err != nil {
				firstErr = keepFirst(firstErr, err)
			} else {
				good++
			}
			n.branches = append(n.branches, bn)
		}
		if good == 0 {
			return nil, firstErr
		}
		return n, nil
	}
	if ru, ok := r.(*avro.UnionSchema); ok {
		var firstErr error
		for _, rb := range unionCandidates(w, ru) {
			n, err := c.node(w, rb, path)
			if err == nil {
				return n, nil
			}
			firstErr = keepFirst(firstErr, err)
		}
		if firstErr == nil {
			firstErr = incompatible(path, "writer %s matches no branch of reader %s", typeName(w), typeName(r))
		}
		return nil, firstErr
	}
	switch w.Type() {
	case avro.Null:
		if r.Type() != avro.Null {
			return nil, incompatible(path, "writer null cannot be read as reader %s", typeName(r))
		}
		return &node{code: nNull}, nil
	case avro.Record:
		rr, ok := r.(*avro.RecordSchema)
		if !ok {
			return nil, incompatible(path, "writer %s cannot be read as reader %s", typeName(w), typeName(r))
		}
		return c.record(w.(*avro.RecordSchema), rr, path)
	case avro.Array:
		ra, ok := r.(*avro.ArraySchema)
		if !ok {
			return nil, incompatible(path, "writer %s cannot be read as reader %s", typeName(w), typeName(r))
		}
		elem, err := c.node(w.(*avro.ArraySchema).Items(), ra.Items(), path+"[]")
		if err != nil {
			return nil, err
		}
		return &node{code: nArray, elem: elem}, nil
	case avro.Map:
		rm, ok := r.(*avro.MapSchema)
		if !ok {
			return nil, incompatible(path, "writer %s cannot be read as reader %s", typeName(w), typeName(r))
		}
		elem, err := c.node(w.(*avro.MapSchema).Values(), rm.Values(), path+"{}")
		if err != nil {
			return nil, err
		}
		return &node{code: nMap, elem: elem}, nil
	}
	sc, err := c.scalar(w, r, path)
	if err != nil {
		return nil, err
	}
	return &node{code: nScalar, sc: sc}, nil
}

// record compiles a record transcoder, memoised per (writer, reader) pair
// so recursive types compile to cyclic node graphs.
func (c *compiler) record(w, r *avro.RecordSchema, path string) (*node, error) {
	key := pair{w, r}
	if n, ok := c.nodes[key]; ok {
		return n, nil
	}
	n := &node{code: nRecord, rec: &recPlan{}}
	c.nodes[key] = n
	p, err := c.recPlan(w, r, path)
	if err != nil {
		delete(c.nodes, key)
		return nil, err
	}
	n.rec = p
	return n, nil
}

func (c *compiler) recPlan(w, r *avro.RecordSchema, path string) (*recPlan, error) {
	wf, rf := w.Fields(), r.Fields()
	matched := matchFields(wf, rf)
	used := make([]bool, len(rf))
	keys := make([][]byte, len(rf))
	for i, f := range rf {
		var k []byte
		if i > 0 {
			k = append(k, ',')
		}
		keys[i] = AppendJSONKey(k, f.Name())
	}
	nodes := make([]*node, len(wf))
	reorder := false
	last := -1
	for i, f := range wf {
		ri := matched[i]
		if ri < 0 {
			continue
		}
		used[ri] = true
		if ri < last {
			reorder = true
		}
		last = ri
		n, err := c.node(f.Type(), rf[ri].Type(), path+"."+rf[ri].Name())
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	consts := make([][]byte, len(rf))
	for ri, f := range rf {
		if used[ri] {
			continue
		}
		if !f.HasDefault() {
			return nil, incompatible(path+"."+f.Name(), "reader field has no default and writer %s lacks it", typeName(w))
		}
		js, err := defaultJSON(nil, f.Type(), f.Default())
		if err != nil {
			return nil, fmt.Errorf("schemas: field %q: default: %w", path+"."+f.Name(), err)
		}
		consts[ri] = js
	}
	p := &recPlan{reorder: reorder}
	if reorder {
		p.keys, p.consts = keys, consts
		for i, f := range wf {
			if matched[i] < 0 {
				p.steps = append(p.steps, recStep{skip: c.skip(f.Type())})
			} else {
				p.steps = append(p.steps, recStep{node: nodes[i], pos: matched[i]})
			}
		}
		return p, nil
	}
	next := 0
	flush := func(upto int) {
		for ; next < upto; next++ {
			p.steps = append(p.steps, recStep{konst: append(slices.Clip(keys[next]), consts[next]...)})
		}
	}
	for i, f := range wf {
		ri := matched[i]
		if ri < 0 {
			p.steps = append(p.steps, recStep{skip: c.skip(f.Type())})
			continue
		}
		flush(ri)
		p.steps = append(p.steps, recStep{node: nodes[i], pos: ri, key: keys[ri]})
		next = ri + 1
	}
	flush(len(rf))
	return p, nil
}

// unionCandidates orders the reader union's branches a writer type may
// resolve to: same type and name first, then same type (named types under
// another name), then promotions.
func unionCandidates(w avro.Schema, ru *avro.UnionSchema) []avro.Schema {
	var exact, sameType, promo []avro.Schema
	for _, rb := range ru.Types() {
		rb = deref(rb)
		switch {
		case rb.Type() == w.Type():
			if namesMatch(w, rb) {
				exact = append(exact, rb)
			} else {
				sameType = append(sameType, rb)
			}
		case promotes(w.Type(), rb.Type()):
			promo = append(promo, rb)
		}
	}
	return append(append(exact, sameType...), promo...)
}

func namesMatch(w, r avro.Schema) bool {
	wn, ok1 := w.(avro.NamedSchema)
	rn, ok2 := r.(avro.NamedSchema)
	if !ok1 || !ok2 {
		return true
	}
	return wn.FullName() == rn.FullName() || wn.Name() == rn.Name() || slices.Contains(rn.Aliases(), wn.FullName())
}

// promotes reports whether the Avro spec lets writer type w be read as a
// different reader type r.
func promotes(w, r avro.Type) bool {
	switch w {
	case avro.Int:
		return r == avro.Long || r == avro.Float || r == avro.Double
	case avro.Long:
		return r == avro.Float || r == avro.Double
	case avro.Float:
		return r == avro.Double
	case avro.String:
		return r == avro.Bytes
	case avro.Bytes:
		return r == avro.String
	}
	return false
}

// scalar compiles the reading of scalar writer type w as scalar reader type r
// (neither a union).
func (c *compiler) scalar(w, r avro.Schema, path string) (scalar, error) {
	w, r = deref(w), deref(r)
	kind, ok := scalarKind(r)
	if !ok || (w.Type() != r.Type() && !promotes(w.Type(), r.Type())) {
		return scalar{}, incompatible(path, "writer %s cannot be read as reader %s", typeName(w), typeName(r))
	}
	sc := scalar{kind: kind}
	switch w.Type() {
	case avro.Null:
		sc.rd = rdNull
	case avro.Boolean:
		sc.rd = rdBool
	case avro.Int, avro.Long:
		sc.rd = rdLong
		if w.Type() == avro.Int {
			sc.rd = rdInt
		}
		switch r.Type() {
		case avro.Float:
			sc.conv = cvFloat32
		case avro.Double:
			sc.conv = cvFloat64
		case avro.Long:
			wl, rl := logical(w), logical(r)
			if wl == avro.TimestampMillis && rl == avro.TimestampMicros {
				sc.conv = cvMsToUs
			} else if wl == avro.TimestampMicros && rl == avro.TimestampMillis {
				sc.conv = cvUsToMs
			}
		}
	case avro.Float:
		sc.rd = rdFloat
	case avro.Double:
		sc.rd = rdDouble
	case avro.String, avro.Bytes:
		sc.rd = rdBytes
		if err := decimalConv(&sc, w, r, path); err != nil {
			return scalar{}, err
		}
	case avro.Fixed:
		wf, rf := w.(*avro.FixedSchema), r.(*avro.FixedSchema)
		if wf.Size() != rf.Size() {
			return scalar{}, incompatible(path, "writer %s has size %d, reader %s has size %d", typeName(w), wf.Size(), typeName(r), rf.Size())
		}
		sc.rd, sc.size = rdFixed, wf.Size()
		if err := decimalConv(&sc, w, r, path); err != nil {
			return scalar{}, err
		}
	case avro.Enum:
		we, re := w.(*avro.EnumSchema), r.(*avro.EnumSchema)
		sc.rd = rdEnum
		sc.enumSym = make([][]byte, len(re.Symbols()))
		for i, s := range re.Symbols() {
			sc.enumSym[i] = slices.Clip([]byte(s))
		}
		def := int32(-1)
		if re.HasDefault() {
			def = int32(slices.Index(re.Symbols(), re.Default()))
		}
		sc.enumMap = make([]int32, len(we.Symbols()))
		for i, s := range we.Symbols() {
			j := int32(slices.Index(re.Symbols(), s))
			if j < 0 {
				j = def
			}
			sc.enumMap[i] = j
		}
	default:
		return scalar{}, incompatible(path, "writer %s cannot be read as reader %s", typeName(w), typeName(r))
	}
	return sc, nil
}

func decimalConv(sc *scalar, w, r avro.Schema, path string) error {
	rs, rdec := decimalScale(r)
	if !rdec {
		return nil
	}
	if ws, wdec := decimalScale(w); wdec && ws != rs {
		return incompatible(path, "writer decimal scale %d differs from reader decimal scale %d", ws, rs)
	}
	sc.conv, sc.scale = cvDecimal, rs
	return nil
}

// skip compiles a skipper for writer type w, memoised per named type.
func (c *compiler) skip(w avro.Schema) *skipNode {
	w = deref(w)
	if n, ok := c.skips[w]; ok {
		return n
	}
	n := &skipNode{}
	switch t := w.(type) {
	case *avro.RecordSchema:
		n.code = skRecord
		c.skips[w] = n
		for _, f := range t.Fields() {
			n.fields = append(n.fields, c.skip(f.Type()))
		}
	case *avro.ArraySchema:
		n.code, n.elem = skArray, c.skip(t.Items())
	case *avro.MapSchema:
		n.code, n.elem = skMap, c.skip(t.Values())
	case *avro.UnionSchema:
		n.code = skUnion
		for _, b := range t.Types() {
			n.branches = append(n.branches, c.skip(b))
		}
	case *avro.FixedSchema:
		n.code, n.size = skFixed, t.Size()
	case *avro.EnumSchema:
		n.code = skVarint
	default:
		switch w.Type() {
		case avro.Null:
			n.code = skNull
		case avro.Boolean:
			n.code = skBool
		case avro.Int, avro.Long:
			n.code = skVarint
		case avro.Float:
			n.code = skFloat
		case avro.Double:
			n.code = skDouble
		case avro.String, avro.Bytes:
			n.code = skBytes
		}
	}
	return n
}
