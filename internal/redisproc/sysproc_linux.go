package redisproc

import (
	"os"
	"syscall"
)

// sysProcAttr has the kernel kill redis-server when the process that started
// it dies, so a test binary killed by -timeout or a load run stopped with
// Ctrl-C leaves no redis-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

var (
	sigStop os.Signal = syscall.SIGSTOP
	sigCont os.Signal = syscall.SIGCONT
)
