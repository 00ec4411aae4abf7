package fiberauth

//go:generate go run ../../internal/cmd/doorconfig

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v3/extractors"

	"github.com/allauthgo/headless"
)

// sources translates an extractor (or a chain of them) into the core's
// sources, or says why it cannot be one. Only Source, Key, AuthScheme and
// Chain are read: the core reads the request itself, as allauth would.
func sources(e extractors.Extractor) ([]headless.Source, error) {
	if e.Chain != nil {
		if len(e.Chain) == 0 {
			return nil, errors.New("fiberauth/v3: Config.Extractor is an empty extractors.Chain: give it FromHeader, FromAuthHeader or FromCookie")
		}
		var out []headless.Source
		for _, x := range e.Chain {
			s, err := sources(x)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	}
	key := strings.TrimSpace(e.Key)
	switch e.Source {
	case extractors.SourceHeader:
		return []headless.Source{headless.FromHeader(key)}, nil
	case extractors.SourceAuthHeader:
		if strings.TrimSpace(e.AuthScheme) == "" {
			return nil, errors.New(`fiberauth/v3: Config.Extractor: FromAuthHeader("") reads the raw Authorization header, which is no token allauth knows; use FromAuthHeader("Bearer")`)
		}
		return []headless.Source{headless.FromAuthHeader(e.AuthScheme)}, nil
	case extractors.SourceCookie:
		return []headless.Source{headless.FromCookie(key)}, nil
	case extractors.SourceQuery, extractors.SourceForm, extractors.SourceParam:
		return nil, fmt.Errorf("fiberauth/v3: Config.Extractor reads %q from the %s, which is not supported: a token in a URL or form ends up in logs; use a header or a cookie", key, sourceName[e.Source])
	case extractors.SourceCustom:
		return nil, fmt.Errorf("fiberauth/v3: Config.Extractor %q is a custom extractor, which is not supported: the middleware must read the credential as allauth would (a repeated header, the last of two cookies, its bytes); use FromHeader, FromAuthHeader or FromCookie", key)
	default:
		return nil, fmt.Errorf("fiberauth/v3: Config.Extractor has an unknown source %d", e.Source)
	}
}

// sourceName names the part of the request an unsupported source reads.
var sourceName = map[extractors.Source]string{
	extractors.SourceQuery: "query string", extractors.SourceForm: "form", extractors.SourceParam: "route parameters",
}
