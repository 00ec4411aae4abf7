// Command doorconfig writes a front door's Config from headless.Config, so
// that a core setting is declared and documented once, in the root
// package's config.go. Each door runs it from its directory:
//
//	//go:generate go run <path to internal/cmd/doorconfig>
//
// It reads the door's config_spec.go (built by no one: //go:build ignore),
// which holds what is the door's own:
//
//   - type Config struct: the door's own fields, with their docs;
//   - type coreTypes struct (optional): a core field the door holds in
//     another type, e.g. Storage fiber.Storage (it must be assignable to the
//     core's);
//   - var ConfigDefault = Config{...} (optional): the door's own defaults.
//
// and writes zz_config_core.go: Config with the door's fields and then every
// exported field of headless.Config but Sources (doc: the core's first
// sentence, a pointer to it, its Optional/Default lines); ConfigDefault with
// the door's defaults and the core's headless.Default* constants; core(),
// which copies the core fields into a headless.Config; and, with a
// ConfigDefault, configDefault, which sets every zero field, the door's and
// the core's, from it: ConfigDefault holds the values New uses.
package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("doorconfig: ")
	door, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	root, err := moduleRoot(door)
	if err != nil {
		log.Fatal(err)
	}
	out, err := Generate(root, door)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(door, OutputFile), out, 0o644); err != nil { //nolint:gosec // a source file, readable by all
		log.Fatal(err)
	}
}

// moduleRoot returns the nearest directory at or above dir holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod at or above %s", dir)
		}
	}
}
