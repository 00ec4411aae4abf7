//go:build race

package cache

// raceEnabled is true when the tests run under the race detector, which makes
// the flood tests several times slower; they then insert fewer keys.
const raceEnabled = true
