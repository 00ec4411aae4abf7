package allauth

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/allauthgo/headless/internal/jsonobj"
	"github.com/allauthgo/headless/introspect"
)

// The members of allauth's answer that decodeAnswer reads, by their exact
// names (see jsonobj.ObjectMembers): the envelope, its data and meta.
var (
	envelopeNames = []string{"status", "data", "meta"}
	dataNames     = []string{"user", "methods", "flows"}
	metaNames     = []string{"is_authenticated"}
)

// decodeAnswer turns a 200, 401 or 410 and its body from the session endpoint
// into a Session or an error. Only a 200 whose JSON says status 200,
// is_authenticated true and carries a valid user id is a Session; only a 401
// or 410 whose JSON says the same status is an [*introspect.AuthError]; everything else
// is an [*introspect.UpstreamError]. The members that decide who is logged in (status,
// data, meta, is_authenticated, user, id and the user's typed fields) are
// read by their exact names, and one named twice, even in another case, is
// refused: encoding/json alone would take "ID" for id and the last of two.
func decodeAnswer(status int, body []byte) (*introspect.Session, error) {
	if status != http.StatusOK && status != http.StatusUnauthorized && status != http.StatusGone {
		return nil, upstreamf(status, "unexpected status")
	}
	if !json.Valid(body) {
		return nil, upstreamf(status, "body is not allauth JSON")
	}
	var env, data [3]json.RawMessage
	var meta [1]json.RawMessage
	if err := jsonobj.ObjectMembers(body, envelopeNames, env[:]); err != nil {
		return nil, &introspect.UpstreamError{Status: status, Reason: "body is not allauth JSON", Err: err}
	}
	if !isInt(env[0], status) {
		return nil, upstreamf(status, "body status does not match HTTP status")
	}
	if err := optionalObject(env[1], dataNames, data[:]); err != nil {
		return nil, &introspect.UpstreamError{Status: status, Reason: "malformed data", Err: err}
	}
	if err := optionalObject(env[2], metaNames, meta[:]); err != nil {
		return nil, &introspect.UpstreamError{Status: status, Reason: "malformed meta", Err: err}
	}
	if status != http.StatusOK {
		var flows []introspect.Flow
		if !isNull(data[2]) {
			if err := json.Unmarshal(data[2], &flows); err != nil {
				return nil, &introspect.UpstreamError{Status: status, Reason: "malformed flows", Err: err}
			}
		}
		return nil, &introspect.AuthError{Status: status, Flows: flows}
	}
	if string(meta[0]) != "true" {
		return nil, upstreamf(status, "200 without is_authenticated: true")
	}
	// introspect.Session.UnmarshalJSON reads the user and methods as decodeAnswer once
	// did, on its own copy of them (the Session keeps parts, and body is the
	// caller's to reuse).
	if isNull(env[1]) {
		env[1] = emptyObject
	}
	s := new(introspect.Session)
	if err := s.UnmarshalJSON(env[1]); err != nil {
		var up *introspect.UpstreamError
		if errors.As(err, &up) {
			return nil, up
		}
		return nil, &introspect.UpstreamError{Status: status, Reason: "malformed data", Err: err}
	}
	return s, nil
}

var emptyObject = json.RawMessage("{}")

// optionalObject reads the members of raw, a JSON object, null or absent.
func optionalObject(raw json.RawMessage, names []string, vals []json.RawMessage) error {
	if isNull(raw) {
		clear(vals)
		return nil
	}
	return jsonobj.ObjectMembers(raw, names, vals)
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// isInt reports whether raw is the JSON integer n, written plainly.
func isInt(raw []byte, n int) bool {
	if len(raw) == 0 || len(raw) > 4 || (raw[0] == '0' && len(raw) > 1) {
		return false
	}
	v := 0
	for _, b := range raw {
		if b < '0' || b > '9' {
			return false
		}
		v = v*10 + int(b-'0')
	}
	return v == n
}

func upstreamf(status int, reason string) *introspect.UpstreamError {
	return &introspect.UpstreamError{Status: status, Reason: reason}
}
