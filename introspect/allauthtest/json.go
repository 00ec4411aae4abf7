package allauthtest

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// This file holds a tiny JSON encoder that writes what Python's json.dumps
// writes with its defaults (as Django's JsonResponse does): ", " between
// items, ": " between key and value, non-ASCII escaped as \uXXXX (lower-case
// hex, surrogate pairs above the BMP), floats in Python's repr form
// (1795711583.4385333, 3.0, 1e+16) and keys in the order given.

// field is one key/value pair of an ordered JSON object.
type field struct {
	k string
	v any
}

// object is a JSON object whose keys keep their order.
type object []field

// pyJSON encodes v the way Python's json.dumps does by default.
func pyJSON(v any) []byte {
	var b bytes.Buffer
	encodeValue(&b, v)
	return b.Bytes()
}

func encodeValue(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		encodeString(b, x)
	case int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int8:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int16:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint8:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint16:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case float32:
		b.WriteString(pyFloat(float64(x)))
	case float64:
		b.WriteString(pyFloat(x))
	case json.Number:
		b.WriteString(x.String())
	case object:
		b.WriteByte('{')
		for i, f := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			encodeString(b, f.k)
			b.WriteString(": ")
			encodeValue(b, f.v)
		}
		b.WriteByte('}')
	case []object:
		encodeList(b, x)
	case []any:
		encodeList(b, x)
	case []string:
		encodeList(b, x)
	case map[string]any:
		encodeValue(b, sortedObject(x))
	default:
		encodeOther(b, v)
	}
}

// encodeList writes a JSON array with Python's ", " separator.
func encodeList[T any](b *bytes.Buffer, xs []T) {
	b.WriteByte('[')
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		encodeValue(b, x)
	}
	b.WriteByte(']')
}

// sortedObject turns a map into an object with its keys sorted.
func sortedObject(m map[string]any) object {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	o := make(object, 0, len(keys))
	for _, k := range keys {
		o = append(o, field{k, m[k]})
	}
	return o
}

// encodeOther handles any other Go value (structs, typed maps and slices,
// pointers) by a round trip through encoding/json; a value encoding/json
// cannot marshal is written as null.
func encodeOther(b *bytes.Buffer, v any) {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		b.WriteString("null")
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		b.WriteString("null")
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		b.WriteString("null")
		return
	}
	encodeValue(b, generic)
}

// pyFloat formats f like Python's float.__repr__.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

const hexDigits = "0123456789abcdef"

// encodeString writes s as a JSON string with Python's ensure_ascii escaping.
func encodeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r >= 0x20 && r < 0x7f:
				b.WriteRune(r)
			case r > 0xffff:
				r -= 0x10000
				writeU(b, 0xd800|((r>>10)&0x3ff))
				writeU(b, 0xdc00|(r&0x3ff))
			default:
				writeU(b, r)
			}
		}
	}
	b.WriteByte('"')
}

func writeU(b *bytes.Buffer, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexDigits[(r>>12)&0xf])
	b.WriteByte(hexDigits[(r>>8)&0xf])
	b.WriteByte(hexDigits[(r>>4)&0xf])
	b.WriteByte(hexDigits[r&0xf])
}
