package introspect

import (
	"testing"

	"github.com/allauthgo/headless/internal/credential"
)

// The byte rules in internal/credential are indexed by the same numbers as
// Kind: a renumbering here must not check a token by another kind's rules.
func TestKindsAgreeWithCredentialRules(t *testing.T) {
	for k, want := range map[Kind]int{SessionToken: credential.SessionToken, Bearer: credential.Bearer, Cookie: credential.Cookie} {
		if int(k) != want {
			t.Errorf("%v = %d, internal/credential says %d", k, k, want)
		}
	}
}
