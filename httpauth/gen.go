package httpauth

//go:generate go run ../internal/cmd/doorconfig
