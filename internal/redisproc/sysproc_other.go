//go:build !linux

package redisproc

import (
	"os"
	"syscall"
)

// sysProcAttr is nil off Linux: a killed parent may leave redis-server
// running there.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// Stop and Continue are not supported off Linux (Windows has no SIGSTOP):
// they return an error.
var sigStop, sigCont os.Signal
