package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/allauthgo/headless/internal/jsonobj"
)

// Session is allauth's answer for an authenticated credential.
type Session struct {
	User    User
	Methods []Method
	// ExpiresAt is when the credential stops being valid: a JWT access
	// token's exp. It is zero for session tokens and cookies, and is not
	// written by MarshalJSON.
	ExpiresAt time.Time
}

// User is allauth's data.user. The typed fields are those of allauth's
// default serialize_user; Raw keeps the whole object, so fields a project adds
// through its own serialize_user stay reachable (see [User.Decode]).
type User struct {
	// ID is the user's primary key. allauth sends an integer by default
	// (written here in decimal) or a string for custom user models (a UUID).
	ID                string `json:"id"`
	Display           string `json:"display,omitempty"`
	Email             string `json:"email,omitempty"`
	Username          string `json:"username,omitempty"`
	HasUsablePassword bool   `json:"has_usable_password"`
	// Raw is the user object exactly as allauth sent it.
	Raw json.RawMessage `json:"-"`
	// Claims are the claims of the JWT access token that authenticated the
	// user (iat, exp, sid, jti, token_use, sub and whatever the project's
	// JWTTokenStrategy.get_claims adds), as JSON; nil for other
	// credentials. A user from a token verified by [JWTVerifier] alone has
	// only ID (= sub) and Claims. See [User.DecodeClaims].
	Claims json.RawMessage `json:"-"`
}

// Decode unmarshals the raw user object into v, for project-specific fields.
func (u *User) Decode(v any) error { return json.Unmarshal(u.Raw, v) }

// DecodeClaims unmarshals the JWT claims into v, for project-specific
// claims. It fails when the user was not authenticated by a JWT.
func (u *User) DecodeClaims(v any) error {
	if len(u.Claims) == 0 {
		return errors.New("introspect: the user was not authenticated by a JWT")
	}
	return json.Unmarshal(u.Claims, v)
}

// Method is one entry of allauth's data.methods: how and when the user
// authenticated in this session.
type Method struct {
	// Method is e.g. "password", "code", "socialaccount", "mfa".
	Method string `json:"method"`
	// At is when it happened (allauth sends Unix seconds as a float).
	At time.Time `json:"at"`
	// Raw is the method object exactly as allauth sent it (it also holds e.g.
	// "username", "email" or "provider").
	Raw json.RawMessage `json:"-"`
}

// The members of allauth's answer that are read, by their exact names (see
// jsonobj.ObjectMembers): the session (allauth's data) and its user.
var (
	dataNames = []string{"user", "methods", "flows"}
	userNames = []string{"id", "display", "email", "username", "has_usable_password"}
)

type wireMethod struct {
	Method string   `json:"method"`
	At     *float64 `json:"at"`
}

// decodeSession reads data.user and data.methods, both valid JSON that the
// Session may keep (they are not copied).
func decodeSession(rawUser, rawMethods json.RawMessage) (*Session, error) {
	if len(rawUser) == 0 || rawUser[0] != '{' {
		return nil, upstreamf(http.StatusOK, "200 without a user object")
	}
	var f [5]json.RawMessage
	if err := jsonobj.ObjectMembers(rawUser, userNames, f[:]); err != nil {
		return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed user", Err: err}
	}
	id, err := decodeID(f[0])
	if err != nil {
		return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed user id", Err: err}
	}
	s := &Session{User: User{ID: id, Raw: rawUser}}
	u := &s.User
	for i, dst := range [...]*string{1: &u.Display, 2: &u.Email, 3: &u.Username} {
		if dst == nil {
			continue
		}
		if *dst, err = jsonString(f[i]); err != nil {
			return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed user " + userNames[i], Err: err}
		}
	}
	switch string(f[4]) {
	case "true":
		u.HasUsablePassword = true
	case "", "false", "null":
	default:
		return nil, upstreamf(http.StatusOK, "malformed user has_usable_password")
	}
	if isNull(rawMethods) {
		return s, nil
	}
	err = jsonobj.ArrayElements(rawMethods, func(rm []byte) error {
		var wm wireMethod
		if err := json.Unmarshal(rm, &wm); err != nil {
			return err
		}
		m := Method{Method: wm.Method, Raw: rm}
		if wm.At != nil {
			m.At = floatTime(*wm.At)
		}
		s.Methods = append(s.Methods, m)
		return nil
	})
	if err != nil {
		return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed method", Err: err}
	}
	return s, nil
}

// jsonString reads a JSON string ("" for null or absent).
func jsonString(raw []byte) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	if raw[0] != '"' {
		return "", errNotString
	}
	if jsonobj.PlainString(raw[1 : len(raw)-1]) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// maxIDBytes bounds a string user id: a UUID is 36 bytes, a Django
// CharField primary key rarely longer.
const maxIDBytes = 64

var (
	errNoID      = errors.New("missing or empty")
	errBadIDTy   = errors.New("neither an integer nor a string")
	errBadIntID  = errors.New("not an integer within int64, written plainly")
	errBadStrID  = errors.New("blank, longer than 64 bytes, or with spaces around or control characters")
	errNotString = errors.New("not a string")
)

// decodeID accepts a JSON integer within int64 (kept in decimal as written,
// -0 refused) or a JSON string of 1 to 64 bytes without control characters
// or surrounding white space. Anything else is no user.
func decodeID(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", errNoID
	}
	if raw[0] == '"' {
		s, err := jsonString(raw)
		if err != nil {
			return "", err
		}
		if s == "" {
			return "", errNoID
		}
		if !validStringID(s) {
			return "", errBadStrID
		}
		return s, nil
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return "", errBadIDTy
	}
	for _, b := range raw[1:] {
		if b < '0' || b > '9' {
			return "", errBadIDTy
		}
	}
	digits := raw
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || (digits[0] == '0' && len(raw) > 1) {
		return "", errBadIntID // "-", "-0", "007"
	}
	id := string(raw)
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return "", errBadIntID
	}
	return id, nil
}

// validStringID reports whether s is a plausible string user id.
func validStringID(s string) bool {
	if len(s) > maxIDBytes || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func floatTime(f float64) time.Time {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// MarshalJSON writes the session as allauth's data object,
// {"user": {...}, "methods": [...]}, from the raw JSON allauth sent. A
// Session built by hand (no Raw) is written from its typed fields.
func (s *Session) MarshalJSON() ([]byte, error) {
	out := sessionJSON{User: s.User.Raw, Methods: make([]json.RawMessage, 0, len(s.Methods))}
	if len(out.User) == 0 {
		u, err := json.Marshal(wireUserOut{
			ID: json.RawMessage(strconv.Quote(s.User.ID)), Display: s.User.Display, Email: s.User.Email,
			Username: s.User.Username, HasUsablePassword: s.User.HasUsablePassword,
		})
		if err != nil {
			return nil, err
		}
		out.User = u
	}
	for _, m := range s.Methods {
		raw := m.Raw
		if len(raw) == 0 {
			var err error
			if raw, err = json.Marshal(wireMethodOut{Method: m.Method, At: timeFloat(m.At)}); err != nil {
				return nil, err
			}
		}
		out.Methods = append(out.Methods, raw)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads allauth's data object, with the same checks as an
// answer from allauth: a user object with a valid id is required, and the
// members that decide who the user is are read by their exact names.
func (s *Session) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		return jsonobj.ErrJSONSyntax
	}
	b = bytes.Clone(b) // the Session keeps parts of it; b is the caller's
	var data [3]json.RawMessage
	if err := jsonobj.ObjectMembers(b, dataNames, data[:]); err != nil {
		return err
	}
	decoded, err := decodeSession(data[0], data[1])
	if err != nil {
		return err
	}
	*s = *decoded
	return nil
}

type sessionJSON struct {
	User    json.RawMessage   `json:"user"`
	Methods []json.RawMessage `json:"methods"`
}

type wireUserOut struct {
	ID                json.RawMessage `json:"id"`
	Display           string          `json:"display,omitempty"`
	Email             string          `json:"email,omitempty"`
	Username          string          `json:"username,omitempty"`
	HasUsablePassword bool            `json:"has_usable_password"`
}

type wireMethodOut struct {
	Method string   `json:"method"`
	At     *float64 `json:"at,omitempty"`
}

func timeFloat(t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	f := float64(t.UnixNano()) / 1e9
	return &f
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }
