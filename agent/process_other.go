//go:build !linux

package agent

import "os"

// Off Linux no holder is started (NewChannelPair fails first).

func forkExec(exe string, args []string, files []*os.File) (int, error) { return 0, ErrNotLinux }

func awaitExit(pid int) {}

func reap(pid int) (os.Signal, int) { return nil, -1 }

func kill(pid int, s os.Signal) error { return ErrNotLinux }
