// Package jsonobj reads the members of a JSON object by their exact names,
// refusing a name given twice (ignoring case): the strict reading of
// allauth's answers and JWT claims that introspect and internal/allauth share.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// encoding/json is too lenient for the fields that decide who is logged in:
// it matches a field's name ignoring case ("ID" fills id) and keeps the last
// of two members with the same name, so {"id": 1, "id": 2} is user 2 to it
// and possibly user 1 to a proxy or a log reader. ObjectMembers reads those
// fields of allauth's answer and of a JWT's claims instead.

var (
	errNotObject = errors.New("not a JSON object")
	errNotArray  = errors.New("not a JSON array")
	// ErrJSONSyntax is returned for input that is not valid JSON.
	ErrJSONSyntax   = errors.New("malformed JSON")
	errDuplicateKey = errors.New("a member is named twice (ignoring case)")
)

// ObjectMembers reads the JSON object obj and sets vals[i] to the raw value
// of its member named exactly names[i] (after unescaping the name), or nil
// when there is none; other members are skipped. Two members whose names
// both equal names[i] ignoring case are an error, whichever is exact: a
// case-insensitive reader (encoding/json, User.Decode) could take either.
// The values alias obj. obj must be valid JSON (json.Valid), though bad
// input never makes it panic. len(names) must be at most 64 and equal
// len(vals).
func ObjectMembers(obj []byte, names []string, vals []json.RawMessage) error {
	clear(vals)
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	var seen uint64
	for {
		if i >= len(obj) || obj[i] != '"' {
			return ErrJSONSyntax
		}
		end, err := skipString(obj, i)
		if err != nil {
			return err
		}
		quoted := obj[i:end]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return ErrJSONSyntax
		}
		start := skipSpace(obj, i+1)
		if i, err = skipValue(obj, start); err != nil {
			return err
		}
		if k, exact := matchName(quoted, names); k >= 0 {
			if seen&(1<<k) != 0 {
				return errDuplicateKey
			}
			seen |= 1 << k
			if exact {
				vals[k] = obj[start:i]
			}
		}
		i = skipSpace(obj, i)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
			continue
		}
		if i < len(obj) && obj[i] == '}' {
			return nil
		}
		return ErrJSONSyntax
	}
}

// matchName returns the index of the name that the member name quoted (as
// written, quotes included) equals ignoring case as encoding/json folds it
// (Unicode simple folding: "\u212a" is a k), and whether it is equal
// exactly; or -1.
func matchName(quoted []byte, names []string) (int, bool) {
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(quoted, &s); err != nil {
			return -1, false
		}
		key = []byte(s)
	}
	for k, name := range names {
		if bytes.EqualFold(key, []byte(name)) {
			return k, string(key) == name
		}
	}
	return -1, false
}

// ArrayElements calls visit with each element of the JSON array arr (valid
// JSON, as for ObjectMembers); the elements alias arr.
func ArrayElements(arr []byte, visit func(elem []byte) error) error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errNotArray
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		start := i
		var err error
		if i, err = skipValue(arr, start); err != nil {
			return err
		}
		if err := visit(arr[start:i]); err != nil {
			return err
		}
		i = skipSpace(arr, i)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
			continue
		}
		if i < len(arr) && arr[i] == ']' {
			return nil
		}
		return ErrJSONSyntax
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, ErrJSONSyntax
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, ErrJSONSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, ErrJSONSyntax
	default: // a number, true, false or null
		start := i
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if i == start {
					return 0, ErrJSONSyntax
				}
				return i, nil
			}
			i++
		}
		if i == start {
			return 0, ErrJSONSyntax
		}
		return i, nil
	}
}

// PlainString reports whether a JSON string's content needs no unescaping.
func PlainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' || c == '"' {
			return false
		}
	}
	return utf8.Valid(b)
}
