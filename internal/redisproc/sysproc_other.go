//go:build !linux

package redisproc

import "syscall"

// sysProcAttr is nil off Linux: a killed parent may leave redis-server
// running there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
