//go:build !linux

package procs

// listPIDs lists the processes of procRoot; off Linux there is no proc
// filesystem to read in ranges (list_linux.go).
func listPIDs(procRoot string) ([]int, error) { return listSequential(procRoot) }
