package headless

import "time"

// Storage is the shared tier's store: any key-value store with this method
// set. It is gofiber/storage's fiber.Storage, so every gofiber/storage driver
// (Redis, Memcached, ...) fits as it is. Drivers that also offer the
// *WithContext methods are bounded per call through them; see Config.Storage.
type Storage interface {
	// Get returns the value under key, or nil (and no error) if there is none.
	Get(key string) ([]byte, error)
	// Set stores val under key for exp (0: no expiry).
	Set(key string, val []byte, exp time.Duration) error
	// Delete removes key; a missing key is no error.
	Delete(key string) error
	// Reset removes every key.
	Reset() error
	// Close closes the storage.
	Close() error
}
