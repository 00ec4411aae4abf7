// Package doorconfig turns a front door's Config into the core's. Each door
// carries the core's fields under the same names (so that a door's users
// write fiberauth.Config{BaseURL: ..., CacheTTL: ...}), plus its own; this
// copies them by name, so that the list of fields is written once, in
// headless.Config, and a door that lacks one fails its tests.
package doorconfig

import (
	"fmt"
	"reflect"

	"github.com/allauthgo/headless"
)

// Core returns the headless.Config held in door, a door's Config struct:
// every field of headless.Config but Sources, which each door builds its own
// way, is copied from door's field of the same name. It panics when door
// lacks one or holds it in a type that does not fit: a bug in the door,
// caught by its tests.
func Core(door any) headless.Config {
	var core headless.Config
	src := reflect.ValueOf(door)
	dst := reflect.ValueOf(&core).Elem()
	for i := range dst.NumField() {
		f := dst.Type().Field(i)
		if f.Name == "Sources" || !f.IsExported() {
			continue
		}
		v := src.FieldByName(f.Name)
		if !v.IsValid() || !v.Type().AssignableTo(f.Type) {
			panic(fmt.Sprintf("doorconfig: %s has no field %s of a type that fits %s", src.Type(), f.Name, f.Type))
		}
		dst.Field(i).Set(v)
	}
	return core
}
