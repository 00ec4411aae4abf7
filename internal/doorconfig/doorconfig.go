// Package doorconfig holds what the front doors share about their Config:
// Or, which the generated configDefault uses to fill zero fields from
// ConfigDefault, and Named, which puts a door's name on the core's errors.
// The doors' copies of headless.Config's fields are generated (see
// internal/cmd/doorconfig), not copied by reflection.
package doorconfig

// Or returns v, or d when v is T's zero value.
func Or[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// IsZero reports whether v is T's zero value.
func IsZero[T comparable](v T) bool {
	var zero T
	return v == zero
}
