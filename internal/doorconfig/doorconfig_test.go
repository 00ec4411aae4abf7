package doorconfig

import "testing"

func TestOr(t *testing.T) {
	if got := Or(0, 5); got != 5 {
		t.Errorf("Or(0, 5) = %d, want 5", got)
	}
	if got := Or(-1, 5); got != -1 {
		t.Errorf("Or(-1, 5) = %d, want -1: only the zero value is replaced", got)
	}
	var nilIface any
	if got := Or(nilIface, any("d")); got != "d" {
		t.Errorf("Or(nil, d) = %v, want d", got)
	}
}
