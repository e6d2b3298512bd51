package main

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// probeWarnings warns about a liveness probe of the target container that
// fails while it is frozen: httpGet and grpc get no answer from frozen
// processes. A tcpSocket probe passes (the kernel completes the handshake
// of a frozen listener); an exec probe on cgroup v1 is not counted here
// (see docs/kubectl-freeze.md). The kubelet restarts the container after
// about failureThreshold x periodSeconds of failures.
func probeWarnings(p *corev1.Pod, container string, duration time.Duration) []string {
	name, _, err := targetContainer(p, container)
	if err != nil {
		return nil
	}
	for _, c := range p.Spec.Containers {
		if c.Name != name || c.LivenessProbe == nil {
			continue
		}
		pr := c.LivenessProbe
		kind := ""
		switch {
		case pr.HTTPGet != nil:
			kind = "httpGet"
		case pr.GRPC != nil:
			kind = "grpc"
		default:
			return nil
		}
		threshold, period := pr.FailureThreshold, pr.PeriodSeconds
		if threshold <= 0 {
			threshold = 3
		}
		if period <= 0 {
			period = 10
		}
		limit := time.Duration(threshold*period) * time.Second
		if duration > 0 && duration < limit {
			return nil
		}
		return []string{fmt.Sprintf("pod/%s container %s has a %s liveness probe, which fails while it is frozen: the kubelet restarts the container after about %v (failureThreshold %d x periodSeconds %d); use --duration below %v",
			p.Name, name, kind, limit, threshold, period, limit)}
	}
	return nil
}
