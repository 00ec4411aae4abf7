package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"
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

// envelope is allauth's answer to GET /auth/session.
type envelope struct {
	Status *int `json:"status"`
	Data   struct {
		User    json.RawMessage   `json:"user"`
		Methods []json.RawMessage `json:"methods"`
		Flows   []Flow            `json:"flows"`
	} `json:"data"`
	Meta struct {
		IsAuthenticated *bool `json:"is_authenticated"`
	} `json:"meta"`
}

type wireUser struct {
	ID                json.RawMessage `json:"id"`
	Display           string          `json:"display"`
	Email             string          `json:"email"`
	Username          string          `json:"username"`
	HasUsablePassword bool            `json:"has_usable_password"`
}

type wireMethod struct {
	Method string   `json:"method"`
	At     *float64 `json:"at"`
}

// decodeAnswer turns a 200, 401 or 410 and its body from the session endpoint
// into a Session or an error. Only a 200 whose JSON says status 200,
// is_authenticated true and carries a user id is a Session; only a 401 or
// 410 whose JSON says the same status is an [*AuthError]; everything else is
// an [*UpstreamError].
func decodeAnswer(status int, body []byte) (*Session, error) {
	if status != http.StatusOK && status != http.StatusUnauthorized && status != http.StatusGone {
		return nil, upstreamf(status, "unexpected status")
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, &UpstreamError{Status: status, Reason: "body is not allauth JSON", Err: err}
	}
	if env.Status == nil || *env.Status != status {
		return nil, upstreamf(status, "body status does not match HTTP status")
	}
	if status != http.StatusOK {
		return nil, &AuthError{Status: status, Flows: env.Data.Flows}
	}
	if env.Meta.IsAuthenticated == nil || !*env.Meta.IsAuthenticated {
		return nil, upstreamf(status, "200 without is_authenticated: true")
	}
	return decodeSession(env.Data.User, env.Data.Methods)
}

func decodeSession(rawUser json.RawMessage, rawMethods []json.RawMessage) (*Session, error) {
	if len(rawUser) == 0 || rawUser[0] != '{' {
		return nil, upstreamf(http.StatusOK, "200 without a user object")
	}
	var wu wireUser
	if err := json.Unmarshal(rawUser, &wu); err != nil {
		return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed user", Err: err}
	}
	id, err := decodeID(wu.ID)
	if err != nil {
		return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed user id", Err: err}
	}
	s := &Session{User: User{
		ID:                id,
		Display:           wu.Display,
		Email:             wu.Email,
		Username:          wu.Username,
		HasUsablePassword: wu.HasUsablePassword,
		Raw:               rawUser,
	}}
	if len(rawMethods) > 0 {
		s.Methods = make([]Method, 0, len(rawMethods))
	}
	for _, rm := range rawMethods {
		var wm wireMethod
		if err := json.Unmarshal(rm, &wm); err != nil {
			return nil, &UpstreamError{Status: http.StatusOK, Reason: "malformed method", Err: err}
		}
		m := Method{Method: wm.Method, Raw: rm}
		if wm.At != nil {
			m.At = floatTime(*wm.At)
		}
		s.Methods = append(s.Methods, m)
	}
	return s, nil
}

var (
	errNoID    = errors.New("missing or empty")
	errBadIDTy = errors.New("neither an integer nor a string")
)

// decodeID accepts a JSON integer (kept in decimal, whatever its size) or a
// non-empty JSON string.
func decodeID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", errNoID
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", errNoID
		}
		return s, nil
	}
	digits := raw
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return "", errBadIDTy
	}
	for _, b := range digits {
		if b < '0' || b > '9' {
			return "", errBadIDTy
		}
	}
	// Canonical decimal: JSON forbids leading zeros, so this is already it.
	return string(raw), nil
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
// answer from allauth: a user object with a non-empty id is required.
func (s *Session) UnmarshalJSON(b []byte) error {
	var in sessionJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	decoded, err := decodeSession(in.User, in.Methods)
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
