// Command runcwrap is the runc that containerd runs on the test cluster's
// emulated cgroup v2 node: it removes linux.resources (except the device
// rules) from the bundle's config.json before `create`/`run`, and turns `update` into a no-op, then
// runs the real runc (set with -ldflags "-X main.runc=PATH"). The host binds
// every controller to cgroup v1, so the cgroup2 hierarchy has none of the
// controllers the limits need; freezing needs none of them.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

var runc = "/usr/sbin/runc"

func main() {
	args := os.Args[1:]
	sub, at := "", -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) > 0 && a[0] == '-' {
			// Global flags that take a value as the next argument.
			switch a {
			case "--root", "--log", "--log-format", "--criu", "--rootless":
				i++
			}
			continue
		}
		sub, at = a, i
		break
	}
	switch sub {
	case "update":
		os.Exit(0)
	case "create", "run":
		bundle := "."
		for i := at + 1; i < len(args)-1; i++ {
			if args[i] == "--bundle" || args[i] == "-b" {
				bundle = args[i+1]
			}
		}
		if err := dropResources(filepath.Join(bundle, "config.json")); err != nil {
			fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
			os.Exit(1)
		}
	}
	err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", runc, err)
	os.Exit(1)
}

func dropResources(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	linux, _ := spec["linux"].(map[string]any)
	if linux == nil {
		return nil
	}
	// Device rules are kept: on cgroup2 runc enforces them with an eBPF
	// program, which needs no controller (and a privileged container
	// without its allow-all rule cannot even open /dev/null).
	if res, ok := linux["resources"].(map[string]any); ok {
		for k := range res {
			if k != "devices" {
				delete(res, k)
			}
		}
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(file, out, 0o600)
}
