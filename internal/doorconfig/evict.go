package doorconfig

import (
	"net/http"

	"github.com/allauthgo/headless"
)

// EvictHandler is headless.EvictHandler for the Authenticators of a door's
// middlewares, its error under the door's name.
func EvictHandler(door string, cfg headless.EvictConfig, first *headless.Authenticator, more []*headless.Authenticator) (http.Handler, error) {
	h, err := headless.EvictHandler(cfg, append([]*headless.Authenticator{first}, more...)...)
	if err != nil {
		return nil, Named(door, err)
	}
	return h, nil
}
