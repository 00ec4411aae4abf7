package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// doors are the directories whose zz_config_core.go this command writes.
var doors = []string{"fiberauth", "fiberauth/v3", "httpauth"}

// Each door's checked-in zz_config_core.go is what go generate writes now:
// a field added to or documented anew in headless.Config reaches the doors.
func TestGeneratedUpToDate(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doors {
		dir := filepath.Join(root, filepath.FromSlash(d))
		want, err := Generate(root, dir)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, OutputFile))
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s is out of date with headless.Config or %s: run go generate ./%s/", d, OutputFile, SpecFile, d)
		}
	}
}

// The doc a door gets for a core field keeps the core's first sentences,
// points at the whole and keeps the Optional/Default lines; BaseURL, which
// has none, is Required.
func TestDoorDoc(t *testing.T) {
	t.Parallel()
	got := doorDoc("NegativeTTL", "NegativeTTL is how long allauth's 401 or 410 is served. A negative\nvalue turns negative caching off.\n\nOptional. Default: 5 * time.Second\n")
	want := "NegativeTTL is how long allauth's 401 or 410 is served. A negative value\nturns negative caching off. See headless.Config.NegativeTTL.\n\nOptional. Default: 5 * time.Second"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := doorDoc("BaseURL", "BaseURL is the Django origin that serves allauth, e.g.\n\"http://127.0.0.1:8000\".\n"); got != "BaseURL is the Django origin that serves allauth, e.g.\n\"http://127.0.0.1:8000\". See headless.Config.BaseURL.\n\nRequired." {
		t.Errorf("BaseURL doc:\n%s", got)
	}
}
