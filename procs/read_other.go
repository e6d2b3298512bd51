//go:build !unix

package procs

import "os"

// ReadFile reads a small /proc file; off Unix there is none, and this only
// keeps the package building (read.go has the reason for the Unix one).
func ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }
