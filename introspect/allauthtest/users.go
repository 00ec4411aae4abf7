package allauthtest

import (
	"fmt"
	"maps"
	"sort"
	"strings"
)

// User is an account known to the Server.
type User struct {
	// ID is the user's primary key, an int (Django's default) or a string
	// (e.g. a UUID of a custom user model). If nil, AddUser assigns the next
	// free integer: 1, 2, 3, ...
	ID any
	// Username is the login name; logins by "username" match it exactly
	// (case-sensitive). Methods such as IssueToken find users by it.
	Username string
	// Email is the primary e-mail address; logins by "email" match it
	// ignoring case. Left out of data.user when empty.
	Email string
	// Password is the password a login must present. Empty means an unusable
	// password: no password login succeeds and data.user.has_usable_password
	// is false.
	Password string
	// Display is data.user.display; empty means Username (allauth's default
	// user_display). Left out of data.user when both are empty.
	Display string
	// Inactive marks a deactivated account (Django's is_active=False).
	Inactive bool
	// Extra holds fields a project's serialize_user adds; they follow the
	// default fields in data.user, sorted by key. Values are encoded as JSON
	// the way Python would (maps with sorted keys).
	Extra map[string]any
	// PendingEmailVerification makes logins stop at allauth's mandatory
	// e-mail verification stage: 401 with the flow
	// {"id": "verify_email", "is_pending": true}.
	PendingEmailVerification bool
}

// userRec is the stored state of one user.
type userRec struct {
	u       User
	deleted bool
	pwGen   int // bumped by SetPassword; sessions of an older generation are flushed
}

func (u User) clone() User {
	if u.Extra != nil {
		u.Extra = maps.Clone(u.Extra)
	}
	return u
}

// AddUser adds u and returns the stored copy, with its ID assigned if u.ID
// was nil. A user whose Username is already present is replaced in place:
// it keeps its ID (unless u.ID is set) and its sessions. AddUser never fails.
func (s *Server) AddUser(u User) User {
	u = u.clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Username != "" {
		if rec, ok := s.users[u.Username]; ok {
			if u.ID == nil {
				u.ID = rec.u.ID
			}
			rec.u = u
			return u.clone()
		}
	}
	if u.ID == nil {
		u.ID = s.freeIDLocked()
	}
	rec := &userRec{u: u}
	if u.Username != "" {
		s.users[u.Username] = rec
	}
	s.all = append(s.all, rec)
	return u.clone()
}

// freeIDLocked returns the next integer ID not used by a live user.
func (s *Server) freeIDLocked() int {
	for {
		id := s.nextID
		s.nextID++
		used := false
		for _, rec := range s.all {
			if fmt.Sprint(rec.u.ID) == fmt.Sprint(id) {
				used = true
				break
			}
		}
		if !used {
			return id
		}
	}
}

// findLocked returns the live user whose Username is name or, failing that,
// whose Email equals name ignoring case; nil if there is none.
func (s *Server) findLocked(name string) *userRec {
	if rec, ok := s.users[name]; ok {
		return rec
	}
	if name == "" {
		return nil
	}
	for _, rec := range s.all {
		if rec.u.Email != "" && strings.EqualFold(rec.u.Email, name) {
			return rec
		}
	}
	return nil
}

// byEmailLocked returns the live user with that e-mail (ignoring case).
func (s *Server) byEmailLocked(email string) *userRec {
	for _, rec := range s.all {
		if rec.u.Email != "" && strings.EqualFold(rec.u.Email, email) {
			return rec
		}
	}
	return nil
}

// User returns a copy of the user with that username (or e-mail) and true,
// or a zero User and false if there is none.
func (s *Server) User(username string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.findLocked(username)
	if rec == nil {
		return User{}, false
	}
	return rec.u.clone(), true
}

// SetActive sets whether the user may be authenticated. While inactive, its
// sessions answer 401 (not 410) and a login with the right password answers
// 401; reactivating makes the same sessions answer 200 again. An unknown
// username is ignored.
func (s *Server) SetActive(username string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.findLocked(username); rec != nil {
		rec.u.Inactive = !active
	}
}

// DeleteUser removes the user. Its sessions survive (as Django's database
// sessions do) and answer 401, never 200 again, even if a user with the same
// username is added later. An unknown username is ignored.
func (s *Server) DeleteUser(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.findLocked(username)
	if rec == nil {
		return
	}
	rec.deleted = true
	if s.users[rec.u.Username] == rec {
		delete(s.users, rec.u.Username)
	}
	for i, r := range s.all {
		if r == rec {
			s.all = append(s.all[:i], s.all[i+1:]...)
			break
		}
	}
}

// UpdateUser calls f with a copy of the user and stores what f leaves there;
// later answers show the change. f runs under the server's lock and must not
// call the Server's methods. If f clears ID the old one is kept; a changed
// Username re-keys the user (ignored if another user already has it).
// Changing Password here does not end sessions; use SetPassword for that.
// An unknown username is ignored and f is not called.
func (s *Server) UpdateUser(username string, f func(*User)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.findLocked(username)
	if rec == nil {
		return
	}
	u := rec.u.clone()
	f(&u)
	u = u.clone()
	if u.ID == nil {
		u.ID = rec.u.ID
	}
	if u.Username != rec.u.Username {
		if _, taken := s.users[u.Username]; taken && u.Username != "" {
			u.Username = rec.u.Username
		} else {
			if s.users[rec.u.Username] == rec {
				delete(s.users, rec.u.Username)
			}
			if u.Username != "" {
				s.users[u.Username] = rec
			}
		}
	}
	rec.u = u
}

// SetPassword changes the user's password the way Django's set_password
// does: every existing session of the user answers 401 once (its row is
// flushed and a browser cookie cleared) and 410 (app) or 401 (browser) after
// that. An unknown username is ignored.
func (s *Server) SetPassword(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.findLocked(username); rec != nil {
		rec.u.Password = password
		rec.pwGen++
	}
}

// userObject is data.user as allauth's default serialize_user writes it.
func userObject(u User) object {
	o := object{{"id", u.ID}}
	display := u.Display
	if display == "" {
		display = u.Username
	}
	if display != "" {
		o = append(o, field{"display", display})
	}
	if u.Email != "" {
		o = append(o, field{"email", u.Email})
	}
	o = append(o, field{"has_usable_password", u.Password != ""})
	if u.Username != "" {
		o = append(o, field{"username", u.Username})
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		replaced := false
		for i := range o {
			if o[i].k == k { // like a Python dict update: same place, new value
				o[i].v = u.Extra[k]
				replaced = true
				break
			}
		}
		if !replaced {
			o = append(o, field{k, u.Extra[k]})
		}
	}
	return o
}
