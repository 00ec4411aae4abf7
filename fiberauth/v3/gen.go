package fiberauth

//go:generate go run ../../internal/cmd/doorconfig
