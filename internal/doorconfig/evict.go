package doorconfig

import (
	"net/http"

	"github.com/allauthgo/headless"
)

// EvictHandler is headless.EvictHandler for the Authenticators of a door's
// middlewares (auth gives one's), its error under the door's name.
func EvictHandler[M any](door string, cfg headless.EvictConfig, auth func(M) *headless.Authenticator, m M, more []M) (http.Handler, error) {
	as := []*headless.Authenticator{auth(m)}
	for _, o := range more {
		as = append(as, auth(o))
	}
	h, err := headless.EvictHandler(cfg, as...)
	if err != nil {
		return nil, Named(door, err)
	}
	return h, nil
}
